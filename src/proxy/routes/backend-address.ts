import { isIP } from "node:net";

/** Where a proxy may send a machine's requests: a literal IP address and an integer port. */
export interface BackendEndpoint {
  /** Without brackets for IPv6. */
  address: string;
  port: number;
}

/**
 * The endpoint of a machine's backend URL if a proxy may dial it, else why not. A Machine's status
 * is written by an agent; a status naming any other host would make every proxy a relay to it
 * (and, for HAProxy, put that string into its runtime API). QEMU forwards guest ports on the
 * host's loopback only, and Nodes record no other address, so loopback is all a backend can be.
 */
export function backendEndpoint(url: URL): BackendEndpoint | { refused: string } {
  if (url.protocol !== "http:") return { refused: `${url.href} is not an http URL` };
  if (url.username || url.password) return { refused: `${url.href} carries credentials` };
  const address = url.hostname.replace(/^\[|\]$/g, "");
  if (isIP(address) === 0) return { refused: `${url.hostname} is not a literal IP address` };
  if (!isLoopback(address)) return { refused: `${address} is not a loopback address (machines are forwarded on the host's loopback only)` };
  if (!/^[1-9][0-9]{0,4}$/.test(url.port) || Number(url.port) > 65535) return { refused: `${url.href} has no explicit port 1-65535` };
  return { address, port: Number(url.port) };
}

export function isLoopback(address: string): boolean {
  if (isIP(address) === 4) return address.startsWith("127.");
  return address === "::1" || address === "0:0:0:0:0:0:0:1";
}
