import { Type, type Static } from "@sinclair/typebox";
import type { FastifyInstance, FastifyRequest } from "fastify";
import { type IncomingMessage, ServerResponse } from "node:http";
import { connect, type Socket } from "node:net";
import type { Duplex } from "node:stream";
import type { Image, Machine } from "../../model/kinds.ts";
import { ApiError } from "../api-error.ts";
import type { ApiContext } from "../context.ts";
import { countRequest } from "../metrics-hook.ts";
import { closed, ErrorBody, Name } from "../schemas/common.ts";
import { errorResponses } from "../schemas/requests.ts";

/** The Upgrade token a tunnel request carries and its 101 answers. */
export const TUNNEL_PROTOCOL = "pith-tunnel";

/** The route, for clients that build the path themselves. */
export const tunnelPath = (machine: string, port: number): string => `/api/v1/machines/${encodeURIComponent(machine)}/tunnel/${port}`;

/** How long the API waits for a machine's forwarded port to accept before answering 502. */
const DIAL_TIMEOUT_MS = 5_000;

/** Where a machine's forwards live: pith-net forwards listen ports on the host's loopback and nowhere else. */
const LOOPBACK = new Set(["127.0.0.1", "localhost", "[::1]", "::1"]);

const TunnelParams = Type.Object(
  { name: Name, port: Type.Integer({ minimum: 1, maximum: 65535, description: "the guest port, as the machine's image declares it in listen" }) },
  closed,
);

interface PendingUpgrade {
  socket: Duplex;
  head: Buffer;
}

/**
 * `GET /api/v1/machines/:name/tunnel/:port` with `Connection: Upgrade` and `Upgrade: pith-tunnel`:
 * a byte stream to guest port `:port` of machine `:name`, for a client that cannot reach machines
 * itself (the proxy running as a Pith machine, whose only egress is this API).
 *
 * Why an Upgrade on a resource route rather than HTTP CONNECT:
 * - CONNECT's target is an authority (`host:port`): its very shape is "relay me to this address",
 *   which is the open relay this must never be. Here the target is a Machine object by name, and
 *   the address is what the control plane recorded for it; no request can name another one.
 * - Node hands CONNECT to a separate 'connect' event, outside Fastify. Routing the upgrade through
 *   Fastify (as @fastify/websocket does) gives the tunnel the same bearer-token hook, JSON errors,
 *   validation, metrics and OpenAPI entry as every other route, and no second auth path to keep.
 *
 * Errors are ordinary JSON responses, sent before anything is upgraded: 401 bad token, 403 a role
 * without tunnels or a port its image does not declare in listen, 404 unknown machine or a port it
 * does not forward, 409 a machine that is not ready (or whose forward is not
 * on this host's loopback), 502 the forward did not accept. Only then does the API answer 101 and
 * relay bytes both ways until either side closes.
 */
export function registerTunnelRoute(app: FastifyInstance, ctx: ApiContext): void {
  const pending = new WeakMap<IncomingMessage, PendingUpgrade>();
  const open = new Set<Duplex>();

  // Without an 'upgrade' listener Node would treat an Upgrade request as a plain one, still bound
  // to the HTTP parser: its socket could not carry raw bytes. So every upgrade comes here, gets a
  // response object on its socket, and is dispatched through Fastify's router like any request.
  app.server.on("upgrade", (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    socket.on("error", () => socket.destroy()); // the server stopped listening for this socket's errors
    pending.set(req, { socket, head });
    const res = new ServerResponse(req);
    res.shouldKeepAlive = false; // the parser has let go of the socket: one answer, then close
    res.assignSocket(socket as Socket);
    res.once("finish", () => socket.end());
    app.routing(req, res);
  });

  app.addHook("preClose", async () => {
    for (const stream of [...open]) stream.destroy();
  });

  app.get<{ Params: Static<typeof TunnelParams> }>(
    "/api/v1/machines/:name/tunnel/:port",
    {
      schema: {
        summary: "Open a byte stream to a machine's forwarded port (HTTP Upgrade: pith-tunnel)",
        description:
          "Send Connection: Upgrade and Upgrade: pith-tunnel. The API dials the forwarded address it recorded for the machine's guest port, " +
          "answers 101 Switching Protocols once that connection is up, then relays bytes both ways. Only machines the control plane knows, " +
          "in phase ready, are reachable; never an arbitrary host:port.",
        tags: ["Machine"],
        params: TunnelParams,
        response: {
          101: { description: "the tunnel is open: what follows on the connection is the machine's bytes" },
          ...errorResponses(400, 401, 404, 409),
          426: { ...ErrorBody, description: "the request did not ask for Upgrade: pith-tunnel" },
          502: { ...ErrorBody, description: "the machine's forwarded port did not accept the connection; error.cause has the system error code" },
        },
      },
    },
    async (request, reply) => {
      const upgrade = pending.get(request.raw);
      if (!upgrade || !asksForTunnel(request)) {
        return reply
          .code(426)
          .header("upgrade", TUNNEL_PROTOCOL)
          .header("connection", "upgrade")
          .send({ error: { code: "Invalid", message: "this route opens a tunnel and needs an HTTP upgrade", hint: `send Connection: Upgrade and Upgrade: ${TUNNEL_PROTOCOL}` } });
      }
      const { name, port } = request.params;
      const target = await tunnelTarget(ctx, name, port);
      let upstream: Socket;
      try {
        upstream = await dial(target.host, target.port);
      } catch (error) {
        const cause = (error as NodeJS.ErrnoException).code ?? "EUNKNOWN";
        return reply.code(502).send({
          error: {
            code: "MachineUnreachable",
            message: `machine ${name} did not accept a connection on port ${port} (forwarded at ${target.host}:${target.port}): ${cause}`,
            hint: "the machine may be stopping or its app may have closed the port; GET /api/v1/machines/" + name + " shows its state",
            cause,
          },
        });
      }
      reply.hijack();
      if (upgrade.socket.destroyed) {
        upstream.destroy(); // the client left while we dialled
        return reply;
      }
      reply.raw.detachSocket(upgrade.socket as Socket);
      countRequest(request, 101);
      splice(upgrade.socket, upstream, upgrade.head, open);
      return reply;
    },
  );
}

function asksForTunnel(request: FastifyRequest): boolean {
  const upgrade = (request.headers.upgrade ?? "").toLowerCase();
  const connection = String(request.headers.connection ?? "").toLowerCase();
  return upgrade === TUNNEL_PROTOCOL && connection.split(",").some((token) => token.trim() === "upgrade");
}

/** The forwarded address of a ready machine's guest port, from what its agent recorded. */
async function tunnelTarget(ctx: ApiContext, name: string, port: number): Promise<{ host: string; port: number }> {
  const machine = await ctx.store.get<Machine>("Machine", name);
  if (!machine) throw new ApiError("NotFound", `machine ${name} not found`, "GET /api/v1/machines lists the machines");
  const phase = machine.status?.phase ?? "pending";
  if (phase !== "ready") {
    throw new ApiError("Conflict", `machine ${name} is ${phase}, not ready: tunnels open only to ready machines`, "wait until the machine is ready (GET /api/v1/machines?watch=true), or pick another machine");
  }
  await requireDeclaredPort(ctx, machine, port);
  const addresses = machine.status.addresses ?? [];
  const address = addresses.find((a) => a.guestPort === port);
  if (!address) {
    const ports = addresses.map((a) => a.guestPort).join(", ") || "none";
    throw new ApiError("NotFound", `machine ${name} forwards no guest port ${port} (it forwards: ${ports})`, "use a port from the image's listen list");
  }
  let host: string;
  try {
    host = new URL(address.url).hostname;
  } catch {
    host = "";
  }
  // Forwards are on the host's loopback by construction; anything else in a status is not a
  // forward this API may dial (and the API only reaches the loopback of its own host).
  if (!LOOPBACK.has(host)) {
    throw new ApiError("Conflict", `machine ${name}'s port ${port} is not forwarded on this host's loopback (${address.url})`, "tunnels reach machines on the control plane's own host only");
  }
  return { host: host.startsWith("[") ? host.slice(1, -1) : host, port: address.hostPort };
}

/**
 * Only a port the machine's image declares in `listen`: a status (written by an agent) could name
 * any guest port, but QEMU forwards only declared ones, and nothing else is the app's to serve.
 */
async function requireDeclaredPort(ctx: ApiContext, machine: Machine, port: number): Promise<void> {
  const images = await ctx.store.list<Image>("Image");
  const image = images.items.find((i) => i.spec.digest === machine.spec.image);
  const name = machine.metadata.name;
  if (!image) {
    throw new ApiError("NotFound", `machine ${name}'s image ${machine.spec.image} is not registered, so its listen ports are unknown`, "register it as an Image object (pith apply does for the images it builds; POST /api/v1/images otherwise)");
  }
  if (!image.spec.listen.includes(port)) {
    throw new ApiError("Forbidden", `machine ${name}'s image ${image.metadata.name} does not declare port ${port} in listen (it declares: ${image.spec.listen.join(", ") || "none"}): tunnels reach declared listen ports only`, "use a port from the image's listen list");
  }
}

function dial(host: string, port: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host, port, noDelay: true });
    const timer = setTimeout(() => socket.destroy(Object.assign(new Error(`not connected within ${DIAL_TIMEOUT_MS} ms`), { code: "ETIMEDOUT" })), DIAL_TIMEOUT_MS);
    socket.once("error", (error) => {
      clearTimeout(timer);
      reject(error);
    });
    socket.once("connect", () => {
      clearTimeout(timer);
      socket.removeAllListeners("error");
      resolve(socket);
    });
  });
}

/** Answers 101, then relays both ways; a side that closes ends the other once its queue is written. */
function splice(client: Duplex, machine: Socket, head: Buffer, open: Set<Duplex>): void {
  open.add(client);
  open.add(machine);
  if ("setNoDelay" in client && typeof client.setNoDelay === "function") (client as Socket).setNoDelay(true);
  client.write(`HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: ${TUNNEL_PROTOCOL}\r\n\r\n`);
  if (head.length > 0) machine.write(head);
  machine.on("error", () => machine.destroy());
  const closeAfterFlush = (stream: Duplex): void => {
    if (!stream.destroyed) stream.end(() => stream.destroy());
  };
  client.once("close", () => {
    open.delete(client);
    closeAfterFlush(machine);
  });
  machine.once("close", () => {
    open.delete(machine);
    closeAfterFlush(client);
  });
  client.pipe(machine);
  machine.pipe(client);
}
