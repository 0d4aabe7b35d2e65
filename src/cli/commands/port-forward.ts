import type { Command } from "commander";
import { createServer, isIP, type AddressInfo, type Socket } from "node:net";
import { PithClient } from "../../client/pith-client.ts";
import { TunnelSocket } from "../../client/machine-tunnel.ts";
import { userError } from "../../shared/errors.ts";
import { globalClientFlags, resolveClientConfig } from "../client-config.ts";
import { notFound } from "./get.ts";

/** GUEST, LOCAL:GUEST, or :GUEST (a free local port), as kubectl port-forward takes them. */
export function parsePortPair(text: string): { local: number; guest: number } {
  const m = /^(?:(\d*):)?(\d+)$/.exec(text);
  const port = (digits: string): number => (/^[1-9]\d{0,4}$/.test(digits) && Number(digits) <= 65535 ? Number(digits) : Number.NaN);
  const guest = m ? port(m[2]!) : Number.NaN;
  const local = !m ? Number.NaN : m[1] === undefined ? guest : m[1] === "" ? 0 : port(m[1]);
  if (Number.isNaN(guest) || Number.isNaN(local)) {
    throw userError("BAD_ARGUMENTS", `"${text}" is not a port to forward: give GUEST, LOCAL:GUEST or :GUEST (ports 1-65535)`, "e.g. pith port-forward web-1a2b3c 8080, or :8080 for any free local port");
  }
  return { local, guest };
}

/** A machine named as NAME or machine/NAME (m/NAME). */
function machineName(text: string): string {
  const m = /^(?:(?:machine|machines|m)\/)?([^/]+)$/.exec(text);
  if (!m) throw userError("BAD_ARGUMENTS", `"${text}" is not a machine: give its name or machine/NAME`, "pith get machines lists them");
  return m[1]!;
}

/**
 * `pith port-forward MACHINE [LOCAL:]GUEST`: a local port whose every connection becomes a tunnel
 * through the API to one machine's declared port, on whichever host it runs. For reaching one
 * machine past the proxy (debugging, an admin port); it needs a token whose role may open tunnels
 * (admin or proxy), and reaches only what the tunnel route allows.
 */
export function registerPortForward(program: Command): void {
  program
    .command("port-forward")
    .description("forward a local port to a machine's declared port, through the API's tunnel (a machine on any host)")
    .argument("<machine>", "the machine's name, or machine/NAME")
    .argument("<ports>", "GUEST, LOCAL:GUEST, or :GUEST for a free local port")
    .option("--address <ip>", "the local address to listen on (anyone who reaches it reaches the machine)", "127.0.0.1")
    .action(async (machineArg: string, portsArg: string, options: { address: string }, command: Command) => {
      const name = machineName(machineArg);
      const { local, guest } = parsePortPair(portsArg);
      if (isIP(options.address) === 0) throw userError("BAD_FLAG", `--address ${options.address}: not a literal IP address`, "e.g. --address 127.0.0.1");
      const config = resolveClientConfig({ flags: globalClientFlags(command), env: process.env });
      const api = new URL(config.server);
      if (api.protocol !== "http:") throw userError("BAD_FLAG", `port-forward speaks plain HTTP to the API; ${config.server} is not an http:// URL`, "give the API's own http:// address with --server");

      const client = new PithClient({ server: config.server, token: config.token });
      const machine = await client.get("Machine", name);
      if (!machine) throw notFound("Machine", name);
      const forwarded = (machine.status?.addresses ?? []).map((a) => a.guestPort);
      if (!forwarded.includes(guest)) {
        throw userError("BAD_ARGUMENTS", `machine ${name} forwards no guest port ${guest} (it forwards: ${forwarded.join(", ") || "none"})`, "forward one of the ports its image declares in listen");
      }

      const target = { host: api.hostname.replace(/^\[|\]$/g, ""), port: Number(api.port || 80), token: config.token, hostHeader: api.host };
      const open = new Set<Socket>();
      let connections = 0;
      const server = createServer({ noDelay: true }, (socket) => {
        const id = ++connections;
        open.add(socket);
        const tunnel = new TunnelSocket(target, name, guest);
        // Either side ending ends the other, once what it sent is written.
        socket.on("error", () => tunnel.destroy());
        tunnel.on("error", (error: Error) => {
          process.stderr.write(`connection ${id}: ${error.message}\n`);
          socket.destroy();
        });
        socket.once("close", () => {
          open.delete(socket);
          tunnel.destroy();
        });
        tunnel.once("close", () => socket.end());
        socket.pipe(tunnel);
        tunnel.pipe(socket);
      });
      await new Promise<void>((resolve, reject) => {
        server.once("error", (error: NodeJS.ErrnoException) =>
          reject(userError("PORT_IN_USE", `cannot listen on ${options.address}:${local}: ${error.code ?? error.message}`, "pick another local port, or :GUEST for any free one")),
        );
        server.listen(local, options.address, () => resolve());
      });
      const bound = server.address() as AddressInfo;
      const shown = bound.family === "IPv6" ? `[${bound.address}]` : bound.address;
      process.stdout.write(`Forwarding from ${shown}:${bound.port} -> machine/${name}:${guest} (through the API at ${config.server}); Ctrl-C stops\n`);

      await new Promise<void>((resolve) => {
        const stop = (): void => {
          for (const socket of open) socket.destroy();
          server.close(() => resolve());
        };
        process.once("SIGINT", stop);
        process.once("SIGTERM", stop);
      });
    });
}
