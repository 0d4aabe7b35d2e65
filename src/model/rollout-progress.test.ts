import assert from "node:assert/strict";
import { test } from "node:test";
import type { Machine, MachinePhase, Service } from "./kinds.ts";
import { rolloutProgress } from "./rollout-progress.ts";
import { TEMPLATE_HASH_LABEL } from "./template-label.ts";

const meta = (name: string, labels: Record<string, string> = {}, generation = 1) => ({ name, uid: name, resourceVersion: "1", generation, labels, createdAt: "", updatedAt: "" });
const service = (status: Service["status"], generation = 1): Service => ({ apiVersion: "pith.dev/v1", kind: "Service", metadata: meta("web", {}, generation), spec: { image: "app", replicas: 2 }, status });
const machine = (name: string, hash: string | undefined, phase: MachinePhase, desiredState: "running" | "stopped" = "running"): Machine => ({
  apiVersion: "pith.dev/v1",
  kind: "Machine",
  metadata: meta(name, hash ? { [TEMPLATE_HASH_LABEL]: hash } : {}),
  spec: { image: "sha256:a", memoryMiB: 64, vcpus: 1, desiredState },
  status: { phase },
});
const status = { observedGeneration: 1, desired: 2, templateHash: "new", imageDigest: "sha256:a", revision: 2 };

test("a rollout is done when desired machines of the current template are ready and no old one runs", () => {
  const midway = rolloutProgress(service(status), [machine("a", "new", "ready"), machine("b", "new", "booting"), machine("c", "old", "ready")]);
  assert.deepEqual({ ...midway, message: undefined }, { done: false, message: undefined, desired: 2, updatedReady: 1, updated: 2, old: 1 });
  assert.equal(midway.message, "waiting for the rollout of web: 1 of 2 updated machines ready, 1 old machine still running");
  const retiring = rolloutProgress(service(status), [machine("a", "new", "ready"), machine("b", "new", "ready"), machine("c", "old", "ready", "stopped")]);
  assert.equal(retiring.done, true, "a machine being retired is no longer counted");
  assert.equal(retiring.message, "service/web rolled out (revision 2): 2 of 2 machines ready");
});

test("not done while the controller has not seen the spec, while a Secret is missing, or while new machines crash", () => {
  assert.match(rolloutProgress(service(status, 2), []).message, /waiting for the controller to see generation 2/);
  assert.match(rolloutProgress(service({ ...status, message: "waiting for secrets: env X: Secret s not found" }), []).message, /Secret s not found/);
  const crashing = rolloutProgress(service({ ...status, crashLoop: { failures: 2, lastReason: "exit 1", nextAttemptAt: "" } }), [machine("c", "old", "ready")]);
  assert.equal(crashing.done, false);
  assert.match(crashing.message, /keep failing \(exit 1\)/);
});

test("machines without a template label count by their image", () => {
  assert.equal(rolloutProgress(service(status), [machine("a", undefined, "ready"), machine("b", undefined, "ready")]).done, true);
});
