import assert from "node:assert/strict";
import { test } from "node:test";
import type { Service, ServiceRevision } from "../../model/kinds.ts";
import { changeFrom } from "../../model/revision-history.ts";
import { historyTable } from "./rollout.ts";

const at = "2026-12-06T05:00:00Z";
const r = (revision: number, extra: Partial<ServiceRevision> = {}): ServiceRevision => ({ revision, templateHash: `h${revision}`, image: `sha256:${"a".repeat(64)}`, createdAt: at, ...extra });

test("each revision says what changed from the one before, naming env keys but never values", () => {
  assert.equal(changeFrom(undefined, r(1)), "first");
  assert.equal(changeFrom(r(1, { env: { A: "1", B: "x" } }), r(2, { env: { A: "2", B: "x" } })), "env A");
  assert.equal(changeFrom(r(1), r(2, { image: `sha256:${"b".repeat(64)}`, startMode: "snapshot" })), "image; startMode snapshot");
  assert.equal(changeFrom(r(1), r(2, { restartedAt: at })), "restart");
  assert.equal(changeFrom(r(1, { env: { S: { secretRef: { name: "s", key: "k" } } } }), r(2, { env: { S: { secretRef: { name: "s", key: "k" } } } })), "secret or image shape");
  assert.ok(!changeFrom(r(1, { env: { A: "secret-one" } }), r(2, { env: { A: "secret-two" } })).includes("secret-"));
});

test("history lists revisions newest first and marks the current one", () => {
  const service = { metadata: { name: "web" }, spec: { image: "x" }, status: { revision: 2, revisions: [r(2, { env: { A: "2" } }), r(1, { env: { A: "1" } })] } } as unknown as Service;
  const lines = historyTable(service, Date.parse(at) + 60_000).trimEnd().split("\n");
  assert.match(lines[0]!, /^REVISION\s+TEMPLATE\s+IMAGE\s+CHANGE\s+AGE$/);
  assert.match(lines[1]!, /^2 \(current\)\s+h2\s+aaaaaaaaaaaa\s+env A\s+1m$/);
  assert.match(lines[2]!, /^1\s+h1\s+aaaaaaaaaaaa\s+first\s+1m$/);
});
