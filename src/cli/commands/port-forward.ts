import type { Command } from "commander";
import { createServer, isIP, type AddressInfo, type Socket } from "node:net";
import { PithClient } from "../../client/pith-client.ts";
import { TunnelSocket } from "../../client/machine-tunnel.ts";
import { userError } from "../../shared/errors.ts";
import { globalClientFlags, resolveClientConfig } from "../client-config.ts";
import { isLoopback } from "../../model/backend-address.ts";
import { parseKindAndName } from "../kinds.ts";
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

/** Why the local port cannot be listened on, in the operator's terms. */
function listenError(error: NodeJS.ErrnoException, address: string, port: number): Error {
  const where = `${address}:${port}`;
  if (error.code === "EADDRINUSE") return userError("PORT_IN_USE", `cannot listen on ${where}: the port is in use`, "pick another local port, or :GUEST for any free one");
  if (error.code === "EADDRNOTAVAIL") return userError("BAD_FLAG", `cannot listen on ${where}: ${address} is not an address of this host`, "--address takes one of this host's addresses (default 127.0.0.1)");
  if (error.code === "EACCES") return userError("BAD_ARGUMENTS", `cannot listen on ${where}: a port below 1024 needs privileges`, "pick a local port of 1024 or above");
  return userError("LISTEN_FAILED", `cannot listen on ${where}: ${error.code ?? error.message}`);
}

/** A machine named as NAME, or as KIND/NAME with any of the machine kind's words (machine/NAME, m/NAME). */
function machineName(text: string): string {
  if (!text.includes("/")) return text;
  const { kind, name } = parseKindAndName(text, undefined);
  if (kind !== "Machine" || !name) throw userError("BAD_ARGUMENTS", `"${text}" is not a machine: give its name or machine/NAME`, "pith get machines lists them");
  return name;
}

/**
 * `pith port-forward MACHINE [LOCAL:]GUEST`: a local port whose every connection becomes a tunnel
 * through the API to one machine's declared port. For reaching one machine past the proxy
 * (debugging, an admin port); it needs a token whose role may open tunnels (admin or proxy), and
 * reaches only what the tunnel route allows (today: machines on the control plane's host).
 */
export function registerPortForward(program: Command): void {
  program
    .command("port-forward")
    .description("forward a local port to a machine's declared port, through the API's tunnel")
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
      const phase = machine.status?.phase ?? "pending";
      const forwarded = (machine.status?.addresses ?? []).map((a) => a.guestPort);
      // A machine still starting forwards nothing yet: say that, not that the port is wrong.
      if (forwarded.length === 0 && phase !== "ready") {
        throw userError("NOT_READY", `machine ${name} is ${phase}: it forwards no port yet`, `wait until it is ready (pith get machine ${name} -w)`);
      }
      if (!forwarded.includes(guest)) {
        throw userError("BAD_ARGUMENTS", `machine ${name} forwards no guest port ${guest} (it forwards: ${forwarded.join(", ") || "none"})`, "forward one of the ports its image declares in listen");
      }

      const target = { host: api.hostname.replace(/^\[|\]$/g, ""), port: Number(api.port || 80), token: config.token, hostHeader: api.host };
      const open = new Set<Socket>();
      let connections = 0;
      // Half-open: a client that has sent all it will (FIN) still gets the machine's answer.
      const server = createServer({ noDelay: true, allowHalfOpen: true }, (socket) => {
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
        server.once("error", (error: NodeJS.ErrnoException) => reject(listenError(error, options.address, local)));
        server.listen(local, options.address, () => resolve());
      });
      if (!isLoopback(options.address)) {
        process.stderr.write(`pith: listening on ${options.address}, off loopback: anyone who reaches it reaches machine ${name} with your token's tunnel\n`);
      }
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
