/**
 * A node's address: where other hosts (proxies, the control plane's tunnels) reach the machines
 * placed on it. One literal IPv4 address, because pith-net binds its forwards there (AF_INET).
 * The same rules hold for the agent's --address flag, the API and the proxies' checks. (No `node:`
 * import: the GUI's manifest editor bundles the API's rules, which use this.)
 */

const IPV4 = /^(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])(\.(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])){3}$/;

const octets = (address: string): number[] => address.split(".").map(Number);

/** Why `address` cannot be a node's address, or undefined if it can. */
export function nodeAddressProblem(address: string): string | undefined {
  // Canonical dotted quads only: "010.1.1.1" or "10.1" mean different things to different parsers.
  if (!IPV4.test(address)) return `"${address}" is not a literal IPv4 address (like 10.0.0.5)`;
  const [a, b] = octets(address) as [number, number, number, number];
  if (a === 0) return `${address} is not an address a host can be reached at (0.0.0.0/8)`;
  if (a >= 224) return `${address} is a multicast, reserved or broadcast address`;
  if (a === 169 && b === 254) return `${address} is link-local`;
  return undefined;
}

/**
 * Whether `address` is reachable from the internet in principle: anything outside loopback, the
 * private ranges (RFC 1918) and carrier-grade NAT space (RFC 6598). Forwards bound there would
 * publish a machine's ports to the world, so the agent refuses one unless told otherwise.
 */
export function isPublicAddress(address: string): boolean {
  const [a, b] = octets(address) as [number, number, number, number];
  if (a === 127 || a === 10) return false;
  if (a === 172 && b >= 16 && b <= 31) return false;
  if (a === 192 && b === 168) return false;
  if (a === 100 && b >= 64 && b <= 127) return false;
  return true;
}
