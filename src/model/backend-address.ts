import { isIP } from "node:net";
import { nodeAddressProblem } from "./node-address.ts";

/** Where a proxy may send a machine's requests: a literal IP address and an integer port. */
export interface BackendEndpoint {
  /** Without brackets for IPv6. */
  address: string;
  port: number;
}

/**
 * The endpoint of a machine's backend URL if a proxy may dial it, else why not. A Machine's status
 * is written by an agent; a status naming any other host would make every proxy a relay to it
 * (and, for HAProxy, put that string into its runtime API). Forwards listen on the address the
 * machine's node registered (`pith agent --address`), or on loopback for a node that registered
 * none (one host): that, and nothing else, is what a backend can be. `nodeAddress` is that registered address,
 * looked up by the caller from the Node named in the machine's spec, never from its status.
 */
export function backendEndpoint(url: URL, nodeAddress?: string): BackendEndpoint | { refused: string } {
  if (url.protocol !== "http:") return { refused: `${url.href} is not an http URL` };
  if (url.username || url.password) return { refused: `${url.href} carries credentials` };
  const address = url.hostname.replace(/^\[|\]$/g, "");
  if (isIP(address) === 0) return { refused: `${url.hostname} is not a literal IP address` };
  // A node that registered an address forwards there and only there: a loopback URL from it would
  // send the proxy to the proxy's own host.
  const allowed = nodeAddress === undefined ? isLoopback(address) : address === nodeAddress && nodeAddressProblem(nodeAddress) === undefined;
  if (!allowed) return { refused: `${address} is ${nodeAddress === undefined ? "not loopback, and its node registered no address" : `not the address its node registered (${nodeAddress})`}` };
  if (!/^[1-9][0-9]{0,4}$/.test(url.port) || Number(url.port) > 65535) return { refused: `${url.href} has no explicit port 1-65535` };
  return { address, port: Number(url.port) };
}

export function isLoopback(address: string): boolean {
  if (isIP(address) === 4) return address.startsWith("127.");
  return address === "::1" || address === "0:0:0:0:0:0:0:1";
}
