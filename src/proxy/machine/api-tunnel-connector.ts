import type { Duplex } from "node:stream";
import type { UpstreamConnector, UpstreamTarget } from "../upstream/upstream-connector.ts";
import { type ApiTunnelOptions, CODE_BY_STATUS, TunnelError, TunnelSocket } from "../../client/machine-tunnel.ts";

export type { ApiTunnelOptions } from "../../client/machine-tunnel.ts";

/**
 * Reaches machines through the control plane's tunnel route (`GET /api/v1/machines/:name/tunnel/
 * :port`, Upgrade: pith-tunnel) instead of dialling their forwarded ports: for a proxy that can
 * reach the API and nothing else, such as the proxy running as a Pith machine.
 *
 * The proxy knows a backend by its machine and forwarded address; the tunnel wants the guest port
 * (a forwarded host port means nothing to a client that cannot dial it). The connector learns the
 * guest port of each (machine, forwarded port) once, from the machine's status, and remembers it:
 * a machine keeps its forwards for its whole life.
 */
export class ApiTunnelConnector implements UpstreamConnector {
  readonly #options: ApiTunnelOptions;
  readonly #guestPorts = new Map<string, number | Promise<number>>();

  constructor(options: ApiTunnelOptions) {
    this.#options = options;
  }

  connect(target: UpstreamTarget): Duplex {
    return new TunnelSocket(this.#options, target.machine, this.#guestPort(target));
  }

  #guestPort(target: UpstreamTarget): number | Promise<number> {
    const key = `${target.machine}\0${target.port}`;
    const known = this.#guestPorts.get(key);
    if (known !== undefined) return known;
    // Machines come and go; a bounded memory of them is plenty (a miss costs one GET).
    if (this.#guestPorts.size >= MAX_REMEMBERED) this.#guestPorts.delete(this.#guestPorts.keys().next().value as string);
    const lookup = this.#lookup(target).then(
      (port) => {
        this.#guestPorts.set(key, port);
        return port;
      },
      (error: unknown) => {
        this.#guestPorts.delete(key);
        throw error;
      },
    );
    lookup.catch(() => undefined); // whoever connects gets the error
    this.#guestPorts.set(key, lookup);
    return lookup;
  }

  async #lookup(target: UpstreamTarget): Promise<number> {
    const { host, port, token } = this.#options;
    const where = `machine ${target.machine} through the API at ${host}:${port}`;
    let response: Response;
    try {
      response = await fetch(`http://${host}:${port}/api/v1/machines/${encodeURIComponent(target.machine)}`, {
        headers: { authorization: `Bearer ${token}`, accept: "application/json" },
        signal: AbortSignal.timeout(LOOKUP_TIMEOUT_MS),
      });
    } catch (error) {
      const code = (error as { cause?: { code?: unknown } }).cause?.code;
      throw new TunnelError(`cannot reach ${where}: ${String(error)}`, typeof code === "string" ? code : "ECONNREFUSED", 0);
    }
    const text = await response.text();
    if (!response.ok) throw new TunnelError(`cannot reach ${where}: the API answered ${response.status}: ${text.slice(0, 200)}`, CODE_BY_STATUS[response.status] ?? "ETUNNEL", response.status);
    const machine = JSON.parse(text) as { status?: { addresses?: { guestPort: number; hostPort: number }[] } };
    const address = machine.status?.addresses?.find((a) => a.hostPort === target.port);
    if (!address) throw new TunnelError(`cannot reach ${where}: it forwards nothing at port ${target.port}`, "ETUNNELNOTFOUND", 404);
    return address.guestPort;
  }
}

const MAX_REMEMBERED = 4096;
const LOOKUP_TIMEOUT_MS = 5_000;

