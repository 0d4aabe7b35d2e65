import { networkInterfaces } from "node:os";
import { isPublicAddress, nodeAddressProblem } from "../model/node-address.ts";
import { userError } from "../shared/errors.ts";

/**
 * `pith agent --address`: a literal IPv4 address of one of this host's interfaces (machines'
 * forwards are bound there, so another host's address would fail every start), and never a
 * public one unless the operator says so: every machine's listen ports would be on the internet.
 */
export function checkAgentAddress(address: string, allowPublic: boolean, interfaces = hostAddresses()): string {
  const problem = nodeAddressProblem(address);
  if (problem) throw userError("BAD_FLAG", `--address: ${problem}`, "give this host's address on the network its proxies share, e.g. --address 10.0.0.5");
  if (isPublicAddress(address) && !allowPublic) {
    throw userError(
      "PUBLIC_ADDRESS",
      `--address ${address} is a public address: every machine's listen ports would be reachable there by anyone who can route to it`,
      "use this host's address on a private network (10/8, 172.16/12, 192.168/16, 100.64/10), or add --allow-public-address if a firewall stands in front",
    );
  }
  if (!interfaces.includes(address)) {
    throw userError("BAD_FLAG", `--address ${address} is not an address of this host (it has ${interfaces.join(", ") || "none"})`, "give one of this host's own addresses: machines' ports are bound there");
  }
  return address;
}

function hostAddresses(): string[] {
  return Object.values(networkInterfaces()).flatMap((list) => (list ?? []).filter((i) => i.family === "IPv4").map((i) => i.address));
}
