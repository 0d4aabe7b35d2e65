import assert from "node:assert/strict";
import { test } from "node:test";
import { KINDS } from "../model/resource.ts";
import { objectRef, parseKindAndName, resolveKind } from "./kinds.ts";

test("every kind has kubectl-style aliases, case-insensitive", () => {
  const cases: [string, string][] = [
    ["service", "Service"], ["services", "Service"], ["svc", "Service"], ["SVC", "Service"], ["Service", "Service"],
    ["machine", "Machine"], ["machines", "Machine"], ["m", "Machine"],
    ["node", "Node"], ["nodes", "Node"], ["no", "Node"],
    ["image", "Image"], ["images", "Image"], ["img", "Image"],
    ["event", "Event"], ["events", "Event"], ["ev", "Event"],
  ];
  for (const [word, kind] of cases) assert.equal(resolveKind(word), kind, word);
  for (const kind of KINDS) assert.equal(resolveKind(kind), kind);
});

test("an unknown kind lists the valid ones", () => {
  assert.throws(() => resolveKind("pods"), (e: Error & { hint?: string }) => {
    assert.equal(e.message, 'unknown kind "pods"');
    assert.match(e.hint ?? "", /service \(services, svc\), machine \(machines, m\), node \(nodes, no\), image \(images, img\), event \(events, ev\)/);
    return true;
  });
});

test("KIND NAME and KIND/NAME", () => {
  assert.deepEqual(parseKindAndName("svc", "web"), { kind: "Service", name: "web" });
  assert.deepEqual(parseKindAndName("svc/web", undefined), { kind: "Service", name: "web" });
  assert.deepEqual(parseKindAndName("machines", undefined), { kind: "Machine", name: undefined });
  assert.throws(() => parseKindAndName("svc/web", "other"), /not both/);
  assert.throws(() => parseKindAndName("svc/", undefined), /name after "\/" is missing/);
  assert.equal(objectRef("Service", "web"), "service/web");
});
