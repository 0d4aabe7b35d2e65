import type { Socket } from "node:net";

/**
 * The connections each registry token is using, so revoking a token also cuts what it already has
 * open: keep-alive connections, watches, console follows and tunnels (an upgraded tunnel keeps
 * the request's socket). New requests are refused by the auth check, which reads the registry on
 * every request.
 */
export class TokenSessions {
  readonly #sockets = new Map<string, Set<Socket>>();

  track(tokenId: string | undefined, socket: Socket): void {
    if (tokenId === undefined || socket.destroyed) return;
    let sockets = this.#sockets.get(tokenId);
    if (!sockets) this.#sockets.set(tokenId, (sockets = new Set()));
    if (sockets.has(socket)) return;
    sockets.add(socket);
    socket.once("close", () => {
      sockets.delete(socket);
      if (sockets.size === 0 && this.#sockets.get(tokenId) === sockets) this.#sockets.delete(tokenId);
    });
  }

  /** Destroys every connection the token opened; returns how many. */
  endAll(tokenId: string): number {
    const sockets = this.#sockets.get(tokenId);
    this.#sockets.delete(tokenId);
    for (const socket of sockets ?? []) socket.destroy();
    return sockets?.size ?? 0;
  }
}
