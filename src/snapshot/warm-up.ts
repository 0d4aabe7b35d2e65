import { request } from "node:http";
import type { Machine } from "../hypervisor/hypervisor.ts";
import type { ImageRecord } from "../image/image.ts";

/**
 * Before a snapshot is saved, its source answers a few requests. Under emulation the first
 * requests of a fresh process are slow (lazy compilation in V8; in the guest, code no one ran
 * yet), and a restored machine would pay that on every first request; after warm-up the
 * snapshot holds the compiled code. Each request closes its connection, so the saved network
 * state holds none. Returns how many requests were answered; an app that answers none still
 * gets its snapshot.
 */
export async function warmUp(machine: Machine, image: ImageRecord, requests: number): Promise<number> {
  const { readiness } = image;
  const port = readiness.kind === "http" ? machine.ports.find((p) => p.guestPort === readiness.port) : machine.ports[0];
  if (!port || requests <= 0) return 0;
  const path = readiness.kind === "http" ? readiness.path : "/";
  let answered = 0;
  for (let i = 0; i < requests; i++) {
    // At the forward's own address: the node's address, on a host of several (loopback otherwise).
    if (await get(new URL(port.url).hostname, port.hostPort, path)) answered++;
  }
  return answered;
}

function get(host: string, port: number, path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const req = request({ host, port, path, headers: { connection: "close", "user-agent": "pith-snapshot-warm-up" }, timeout: 5000 }, (res) => {
      res.resume();
      res.once("end", () => resolve(true));
      res.once("error", () => resolve(false));
    });
    req.once("timeout", () => req.destroy());
    req.once("error", () => resolve(false));
    req.end();
  });
}
