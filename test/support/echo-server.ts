import { createServer, type AddressInfo, type Server, type Socket } from "node:net";

/** A TCP server that answers every line with "echo: <line>", and counts its connections. */
export async function startEcho(host = "127.0.0.1"): Promise<{ port: number; connections: () => number; close(): Promise<void> }> {
  let count = 0;
  const sockets = new Set<Socket>();
  const server: Server = createServer((socket) => {
    count++;
    sockets.add(socket);
    socket.on("close", () => sockets.delete(socket));
    let pending = "";
    socket.on("data", (chunk: Buffer) => {
      pending += chunk.toString();
      for (let at = pending.indexOf("\n"); at >= 0; at = pending.indexOf("\n")) {
        socket.write(`echo: ${pending.slice(0, at)}\n`);
        pending = pending.slice(at + 1);
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, host, resolve));
  return {
    port: (server.address() as AddressInfo).port,
    connections: () => count,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}
