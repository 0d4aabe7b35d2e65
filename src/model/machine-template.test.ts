import assert from "node:assert/strict";
import { test } from "node:test";
import type { ImageSpec, Secret, ServiceSpec } from "./kinds.ts";
import { machineTemplate, type TemplateOutcome } from "./machine-template.ts";

const image: ImageSpec = { digest: `sha256:${"a".repeat(64)}`, runtime: "native", memoryMiB: 64, vcpus: 1, listen: [8080], egress: [], storedBytes: 1 };
const secret = (hash: string): Secret => ({
  apiVersion: "pith.dev/v1",
  kind: "Secret",
  metadata: { name: "db", uid: "u", resourceVersion: "1", generation: 1, labels: {}, createdAt: "", updatedAt: "" },
  spec: { keys: { password: { hash } }, sealed: { password: "v1.x" } },
  status: {},
});
const spec: ServiceSpec = { image: "app", replicas: 2, env: { A: "1", DB: { secretRef: { name: "db", key: "password" } } } };
const hashOf = (outcome: TemplateOutcome): string => {
  assert.ok("hash" in outcome, JSON.stringify(outcome));
  return outcome.hash;
};
const base = hashOf(machineTemplate(spec, image, () => secret("h1")));

test("the template hash is stable, and changes with each thing a machine is made from", () => {
  assert.equal(hashOf(machineTemplate({ ...spec, env: { DB: spec.env!.DB!, A: "1" } }, image, () => secret("h1"))), base, "key order does not matter");
  const variants: [string, string][] = [
    ["image digest", hashOf(machineTemplate(spec, { ...image, digest: `sha256:${"b".repeat(64)}` }, () => secret("h1")))],
    ["memory", hashOf(machineTemplate(spec, { ...image, memoryMiB: 128 }, () => secret("h1")))],
    ["vCPUs", hashOf(machineTemplate(spec, { ...image, vcpus: 2 }, () => secret("h1")))],
    ["a plain env value", hashOf(machineTemplate({ ...spec, env: { ...spec.env, A: "2" } }, image, () => secret("h1")))],
    ["an added env variable", hashOf(machineTemplate({ ...spec, env: { ...spec.env, B: "1" } }, image, () => secret("h1")))],
    ["a Secret's value (its hash)", hashOf(machineTemplate(spec, image, () => secret("h2")))],
    ["another Secret key", hashOf(machineTemplate({ ...spec, env: { ...spec.env, DB: { secretRef: { name: "db", key: "password" } }, DB2: { secretRef: { name: "db", key: "password" } } } }, image, () => secret("h1")))],
    ["start mode", hashOf(machineTemplate({ ...spec, startMode: "snapshot" }, image, () => secret("h1")))],
    ["a restart", hashOf(machineTemplate({ ...spec, restartedAt: "2026-12-06T06:00:00Z" }, image, () => secret("h1")))],
  ];
  for (const [what, hash] of variants) assert.notEqual(hash, base, `${what} changes the hash`);
  assert.equal(new Set(variants.map(([, h]) => h)).size, variants.length, "each change gives its own hash");
});

test("replicas, hosts and the update strategy are not part of a machine: changing them rolls nothing", () => {
  const same = machineTemplate({ ...spec, replicas: 5, hosts: ["x.example"], update: { strategy: "rolling", maxSurge: 2, maxUnavailable: 1 } }, image, () => secret("h1"));
  assert.equal(hashOf(same), base);
});

test("a missing Secret or key is named, and no template is made", () => {
  assert.deepEqual(machineTemplate(spec, image, () => undefined), { missing: ["env DB: Secret db not found"] });
  const other = secret("h1");
  other.spec.keys = { user: { hash: "h" } };
  assert.deepEqual(machineTemplate(spec, image, () => other), { missing: ["env DB: Secret db has no key password"] });
});

test("the template carries a Secret's hash, never its value", () => {
  const outcome = machineTemplate(spec, image, () => secret("h1"));
  assert.ok("template" in outcome);
  assert.deepEqual(outcome.template.secretEnv, { DB: { name: "db", key: "password" } });
  assert.deepEqual(outcome.template.secretHashes, { DB: "h1" });
  assert.deepEqual(outcome.template.env, { A: "1" });
});
