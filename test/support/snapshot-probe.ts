import assert from "node:assert/strict";
import type { Machine } from "../../src/hypervisor/hypervisor.ts";

/** What test/fixtures/snapshot-probe answers: who the machine thinks it is, and what it drew when. */
export interface Probe {
  machine: string;
  machineSeenByHook: string;
  restores: number;
  greeting: string;
  random: string;
  uuid: string;
  uuidAtStart: string;
  kernelRandom: string;
  startedAt: number;
  now: number;
}

export async function probe(machine: Machine): Promise<Probe> {
  const res = await fetch(machine.ports[0]!.url, { signal: AbortSignal.timeout(20_000) });
  assert.equal(res.status, 200);
  return (await res.json()) as Probe;
}
