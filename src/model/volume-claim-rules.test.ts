import assert from "node:assert/strict";
import { test } from "node:test";
import type { Machine, Volume } from "./kinds.ts";
import { claimRefusal, deleteRefusal } from "./volume-claim-rules.ts";

const volume = (status: Volume["status"], node?: string) => ({ metadata: { name: "v" }, spec: { sizeMiB: 64, ...(node ? { node } : {}) }, status }) as Volume;
const machine = (phase: string) => ({ metadata: { name: "a" }, status: { phase } }) as unknown as Machine;

test("a held volume goes to another machine only once its holder is gone, stopped or failed", () => {
  const held = volume({ attachedTo: "a", node: "n1" });
  for (const phase of ["pending", "booting", "ready", "draining"]) {
    assert.match(claimRefusal(held, { attachedTo: "b" }, machine(phase)) ?? "", /attached to machine a/, phase);
    assert.match(deleteRefusal(held, machine(phase)) ?? "", /attached to machine a/, phase);
  }
  for (const holder of [undefined, machine("stopped"), machine("failed")]) {
    assert.equal(claimRefusal(held, { attachedTo: "b", node: "n1" }, holder), undefined);
    assert.equal(deleteRefusal(held, holder), undefined);
  }
  assert.equal(claimRefusal(held, { attachedTo: "a" }, machine("ready")), undefined, "the holder may write its own status");
  assert.equal(claimRefusal(held, { node: "n1" }, machine("ready")), undefined, "detaching is always allowed");
  assert.equal(claimRefusal(volume({}), { attachedTo: "b" }, undefined), undefined, "a free volume");
});

test("a volume stays on the node holding its file", () => {
  assert.match(claimRefusal(volume({}, "n1"), { attachedTo: "b", node: "n2" }, undefined) ?? "", /file is on node n1/);
  assert.match(claimRefusal(volume({ node: "n1" }), { attachedTo: "b", node: "n2" }, undefined) ?? "", /file is on node n1/);
});
