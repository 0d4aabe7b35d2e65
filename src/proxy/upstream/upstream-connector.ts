import { connect } from "node:net";
import type { Duplex } from "node:stream";

/** Where an upstream connection goes: the machine (for connectors that route by name) and its forwarded address. */
export interface UpstreamTarget {
  machine: string;
  hostname: string;
  port: number;
}

/**
 * How the proxy reaches a machine. The proxy opens every upstream connection (HTTP and upgrade
 * tunnels) through one, so a proxy that cannot dial machines directly (one running inside a VM,
 * say) can plug in another way there.
 *
 * The returned duplex behaves like a net.Socket that is connecting: it emits 'connect' once bytes
 * can flow, 'error' if it cannot get there (a `code` of ECONNREFUSED counts as refused), and
 * 'close' after either. It must not emit 'connect' after the proxy destroyed it.
 */
export interface UpstreamConnector {
  connect(target: UpstreamTarget): Duplex;
}

/** TCP straight to the machine's forwarded port. */
export const directConnector: UpstreamConnector = {
  connect: ({ hostname, port }) => connect({ host: hostname, port, noDelay: true }),
};
