import assert from "node:assert/strict";
import { test } from "node:test";
import type { Machine, Service } from "../model/kinds.ts";
import { SERVICE_LABEL } from "../model/labels.ts";
import { SqliteStore } from "../store/sqlite/sqlite-store.ts";
import { EventRecorder } from "./event-recorder.ts";
import { MACHINE_EVENT_COALESCE_MS, ServiceReconciler } from "./service-reconciler.ts";

const service = (spec: Service["spec"], status: Service["status"] = {}, labels: Record<string, string> = {}): Service => ({
  apiVersion: "pith.dev/v1",
  kind: "Service",
  metadata: { name: "web", uid: "u", resourceVersion: "7", generation: 1, labels, createdAt: "", updatedAt: "" },
  spec,
  status,
});

test("what queues a service: its declaration changing, not its own status writes; its machines' changes, joined", async (t) => {
  const store = SqliteStore.open(":memory:");
  t.after(() => store.close());
  const reconciler = new ServiceReconciler(store, new EventRecorder(store));
  const before = service({ image: "hello", replicas: 2, env: { A: "1", B: "2" } });

  assert.deepEqual(reconciler.keysFor({ type: "ADDED", object: before }), ["web"], "a new service");
  const statusOnly = service({ env: { B: "2", A: "1" }, replicas: 2, image: "hello" }, { ready: 2, desired: 2 });
  assert.deepEqual(reconciler.keysFor({ type: "MODIFIED", object: statusOnly, old: before }), [], "its own status write (key order aside) queues nothing");
  assert.deepEqual(reconciler.keysFor({ type: "MODIFIED", object: service({ ...before.spec, replicas: 3 }), old: before }), ["web"], "a spec change");
  assert.deepEqual(reconciler.keysFor({ type: "MODIFIED", object: service(before.spec, {}, { team: "a" }), old: before }), ["web"], "a label change");
  assert.deepEqual(reconciler.keysFor({ type: "DELETED", object: before, old: before }).length, 1, "its deletion");

  const machine = { kind: "Machine", metadata: { name: "web-1", labels: { [SERVICE_LABEL]: "web" } }, spec: {} } as unknown as Machine;
  assert.deepEqual(reconciler.keysFor({ type: "MODIFIED", object: machine }), [{ key: "web", afterMs: MACHINE_EVENT_COALESCE_MS }]);
});
