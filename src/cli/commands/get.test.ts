import assert from "node:assert/strict";
import { test } from "node:test";
import type { Machine, PithNode, Service } from "../../model/kinds.ts";
import type { ObjectMeta } from "../../model/resource.ts";
import { table } from "../output.ts";
import { alignRow, formatAge, formatDuration, parseSelector, printerFor, serviceState } from "./get.ts";

const NOW = Date.parse("2025-01-01T12:00:00Z");
const ago = (seconds: number) => new Date(NOW - seconds * 1000).toISOString();
const meta = (name: string, createdSecondsAgo: number, extra: Partial<ObjectMeta> = {}): ObjectMeta => ({
  name,
  uid: "u",
  resourceVersion: "7",
  generation: 1,
  labels: {},
  createdAt: ago(createdSecondsAgo),
  updatedAt: ago(createdSecondsAgo),
  ...extra,
});

test("AGE is one unit like kubectl: seconds, minutes, hours, days", () => {
  assert.equal(formatAge(ago(0), NOW), "0s");
  assert.equal(formatAge(ago(45), NOW), "45s");
  assert.equal(formatAge(ago(3 * 60 + 20), NOW), "3m");
  assert.equal(formatAge(ago(2 * 3600 + 59), NOW), "2h");
  assert.equal(formatAge(ago(47 * 3600), NOW), "47h");
  assert.equal(formatAge(ago(5 * 86400), NOW), "5d");
  assert.equal(formatAge(ago(3 * 365 * 86400), NOW), "3y");
  assert.equal(formatAge(new Date(NOW + 5000).toISOString(), NOW), "0s", "clock skew is not a negative age");
  assert.equal(formatAge(undefined, NOW), "<unknown>");
  assert.equal(formatAge("yesterday", NOW), "<unknown>");
});

test("durations: ms below a second, one decimal below ten", () => {
  assert.equal(formatDuration(850), "850ms");
  assert.equal(formatDuration(1234), "1.2s");
  assert.equal(formatDuration(42_400), "42s");
  assert.equal(formatDuration(190_000), "3m10s");
});

test("service rows: short digest, ready/desired and a status word", () => {
  const base: Service = {
    apiVersion: "pith.dev/v1",
    kind: "Service",
    metadata: meta("web", 125, { generation: 2 }),
    spec: { image: "hello-ts", replicas: 3, env: { A: "1", B: "2" }, hosts: ["web.local"] },
    status: { observedGeneration: 2, imageDigest: `sha256:${"ab".repeat(32)}`, desired: 3, ready: 3 },
  };
  const print = printerFor("Service", false, () => NOW);
  assert.deepEqual(print.headers, ["NAME", "IMAGE", "READY", "STATUS", "AGE"]);
  assert.deepEqual(print.row(base), ["web", "abababababab", "3/3", "Running", "2m"]);
  assert.deepEqual(printerFor("Service", true, () => NOW).row(base).slice(5), ["web.local", "2"]);

  const crash = { ...base, status: { ...base.status, ready: 1, crashLoop: { failures: 4, lastReason: "exit 1", nextAttemptAt: ago(-10) } } };
  assert.equal(serviceState(crash), "CrashLoopBackOff");
  assert.equal(serviceState({ ...base, spec: { image: "x", replicas: 0 }, status: { observedGeneration: 2, desired: 0, ready: 0 } }), "ScaledToZero");
  assert.equal(serviceState({ ...base, status: { ...base.status, ready: 1 } }), "Starting");
  assert.equal(serviceState({ ...base, status: {} }), "Pending");
  assert.equal(serviceState({ ...base, metadata: { ...base.metadata, generation: 3 } }), "Updating");
  assert.deepEqual(print.row({ ...base, spec: { image: `sha256:${"cd".repeat(32)}` }, status: {} }).slice(1, 4), ["cdcdcdcdcdcd", "0/1", "Pending"]);
});

test("machine and node rows", () => {
  const machine: Machine = {
    apiVersion: "pith.dev/v1",
    kind: "Machine",
    metadata: meta("web-x1", 30),
    spec: { service: "web", image: "sha256:aa", node: "n1", memoryMiB: 128, vcpus: 1, desiredState: "running" },
    status: { phase: "ready", node: "n1", pid: 42, accelerator: "kvm", startedFrom: "snapshot", timings: { readyMs: 1234 }, addresses: [{ guestPort: 8080, hostPort: 40000, url: "http://127.0.0.1:40000" }] },
  };
  assert.deepEqual(printerFor("Machine", false, () => NOW).row(machine), ["web-x1", "web", "ready", "n1", "1.2s", "30s"]);
  assert.deepEqual(printerFor("Machine", true, () => NOW).row(machine).slice(6), ["42", "http://127.0.0.1:40000", "kvm", "snapshot", "-"]);
  const node: PithNode = {
    apiVersion: "pith.dev/v1",
    kind: "Node",
    metadata: meta("n1", 7200),
    spec: { capacity: { memoryMiB: 4096, vcpus: 4 }, accelerator: "tcg" },
    status: { ready: true, heartbeatAt: ago(3), allocated: { memoryMiB: 512, vcpus: 2, machines: 2 } },
  };
  assert.deepEqual(printerFor("Node", false, () => NOW).row(node), ["n1", "Ready", "loopback", "tcg", "2", "512/4096 MiB", "3s"]);
  assert.equal(printerFor("Node", false, () => NOW).row({ ...node, status: { ...node.status, warmMemoryMiB: 640 } })[5], "512/4096 MiB +640 warm", "warm machines' memory beside the allocation");
  // On a host of several: its address, and whether it is cordoned or draining.
  const cordoned = { ...node, spec: { ...node.spec, address: "10.213.0.11", unschedulable: true } };
  assert.deepEqual(printerFor("Node", false, () => NOW).row(cordoned).slice(0, 3), ["n1", "Ready,SchedulingDisabled", "10.213.0.11"]);
  const draining = { ...cordoned, spec: { ...cordoned.spec, drain: true }, status: { ...node.status, ready: false } };
  assert.equal(printerFor("Node", false, () => NOW).row(draining)[1], "NotReady,SchedulingDisabled,Draining");
  // The wide table says which parts of the jail a node's machines go without.
  assert.equal(printerFor("Node", true, () => NOW).row(node).at(-1), "-");
  assert.equal(printerFor("Node", true, () => NOW).row({ ...node, status: { ...node.status, jailMissing: [] } }).at(-1), "full");
  const partial = { ...node, status: { ...node.status, jailMissing: ["uid: Pith is not root", "cgroup: only root may create cgroups"] } };
  assert.equal(printerFor("Node", true, () => NOW).row(partial).at(-1), "without uid,cgroup");
});

test("tables align columns; watch rows line up under them", () => {
  const out = table(["NAME", "READY", "AGE"], [["web", "1/1", "3m"], ["api-long-name", "0/2", "45s"]]);
  assert.equal(out, "NAME            READY   AGE\nweb             1/1     3m\napi-long-name   0/2     45s\n");
  assert.equal(alignRow(["db", "1/1", "1s"], [13, 5, 3]), "db              1/1     1s");
});

test("label selectors", () => {
  assert.deepEqual(parseSelector("pith.dev/service=web, tier=front"), { "pith.dev/service": "web", tier: "front" });
  assert.throws(() => parseSelector("oops"), /"oops" is not KEY=VALUE/);
});
