import fc from "fast-check";
import { KINDS, type Kind } from "../model/resource.ts";

/**
 * Generators of what a hostile or broken client might send the API, for the property-based tests:
 * valid documents of every kind with parts replaced by anything, keys that have meaning to
 * JavaScript (__proto__, constructor), huge and deep values, unicode and path separators.
 */

/** One valid input document per kind: the seeds that mutations start from. */
export const VALID_INPUTS: Record<Kind, Record<string, unknown>> = {
  Service: { apiVersion: "pith.dev/v1", kind: "Service", metadata: { name: "web", labels: { app: "web" } }, spec: { image: "hello", replicas: 2, env: { A: "b" }, hosts: ["web.example"], update: { strategy: "rolling", maxSurge: 1, maxUnavailable: 0 } } },
  Machine: { apiVersion: "pith.dev/v1", kind: "Machine", metadata: { name: "web-1" }, spec: { image: "sha256:abc", memoryMiB: 128, vcpus: 1, desiredState: "running", env: { A: "b" } }, status: { phase: "pending" } },
  Node: { apiVersion: "pith.dev/v1", kind: "Node", metadata: { name: "n1" }, spec: { capacity: { memoryMiB: 1024, vcpus: 4 }, accelerator: "tcg" }, status: { ready: true } },
  Image: { apiVersion: "pith.dev/v1", kind: "Image", metadata: { name: "hello-abc" }, spec: { digest: "sha256:abc", runtime: "node", memoryMiB: 128, vcpus: 1, listen: [8080], egress: [], storedBytes: 10 } },
  Secret: { apiVersion: "pith.dev/v1", kind: "Secret", metadata: { name: "db" }, spec: { stringData: { password: "s3cret", "tls.key": "k" } } },
  Volume: { apiVersion: "pith.dev/v1", kind: "Volume", metadata: { name: "db-data-0" }, spec: { sizeMiB: 1024 }, status: { attachedTo: "db-1", node: "n1" } },
  Event: { apiVersion: "pith.dev/v1", kind: "Event", metadata: { name: "e1" }, spec: { involved: { kind: "Machine", name: "web-1" }, type: "Normal", reason: "Started", message: "ok", at: "2026-01-01T00:00:00Z" } },
};

export const trickyKey = fc.constantFrom("__proto__", "constructor", "prototype", "toString", "valueOf", "hasOwnProperty", "../x", "a/b", "a~1b", "~", "\\", "%2F", "\u0000", "\n", "é", "𝕏", "", " ", "PITH_X", "A".repeat(300), "a=b", "a,b");

const trickyString = fc.constantFrom("", " ", "\n", "x\ny", "\r", "\u0000", "../../etc/passwd", "/", "C:\\x", "%00", "é", "𝕏", "\u202e", "\ud800", "a".repeat(70_000), "sha256:", "-1", "NaN", "{}", "[]");
const trickyNumber = fc.constantFrom(0, -1, 1.5, 1e308, -1e308, Number.MAX_SAFE_INTEGER, Number.MAX_SAFE_INTEGER + 2, 2 ** 53, 65535, 65536, 16, 15, 16384, 16385, 8, 9, 1000, 1001);

export const anyValue: fc.Arbitrary<unknown> = fc.letrec<{ v: unknown }>((tie) => ({
  v: fc.oneof(
    { depthSize: "small", withCrossShrink: true },
    fc.oneof(fc.string({ maxLength: 20 }), fc.string({ unit: "grapheme", maxLength: 10 }), trickyString, fc.integer(), fc.double(), trickyNumber, fc.boolean(), fc.constant(null)),
    fc.array(tie("v"), { maxLength: 4 }),
    fc.dictionary(fc.oneof(trickyKey, fc.string({ maxLength: 8 })), tie("v"), { maxKeys: 4 }),
  ),
})).v;

/** Sets `value` at `path` (creating objects on the way) as an own property, even for __proto__. */
function setAt(doc: unknown, path: string[], value: unknown): unknown {
  if (path.length === 0) return value;
  const [head, ...rest] = path as [string, ...string[]];
  const base = doc !== null && typeof doc === "object" && !Array.isArray(doc) ? { ...(doc as Record<string, unknown>) } : {};
  Object.defineProperty(base, head, { value: setAt(Object.hasOwn(base, head) ? base[head] : undefined, rest, value), enumerable: true, configurable: true, writable: true });
  return base;
}

/** Paths into a document, its own fields first, then made-up ones. */
function pathsOf(doc: unknown, prefix: string[] = []): string[][] {
  if (doc === null || typeof doc !== "object" || Array.isArray(doc)) return [prefix];
  return [prefix, ...Object.entries(doc).flatMap(([k, v]) => pathsOf(v, [...prefix, k]))];
}

/** A valid document of some kind with up to three parts replaced (or added) by anything. */
export const mutatedDocument: fc.Arbitrary<{ kind: Kind; doc: unknown }> = fc
  .constantFrom(...KINDS)
  .chain((kind) => {
    const seed = VALID_INPUTS[kind];
    const path = fc.oneof(fc.constantFrom(...pathsOf(seed)), fc.tuple(fc.constantFrom(...pathsOf(seed)), trickyKey).map(([p, k]) => [...p, k]));
    return fc.array(fc.tuple(path, anyValue), { maxLength: 3 }).map((changes) => ({
      kind,
      doc: changes.reduce<unknown>((doc, [p, v]) => setAt(doc, p, v), seed),
    }));
  });

/**
 * A document's JSON text, maybe with a `"__proto__"` or `"constructor"` member added at its top
 * level (mutations put them deeper: JSON.stringify writes an own `__proto__` property as a member).
 */
export const documentText: fc.Arbitrary<{ kind: Kind; text: string }> = fc
  .tuple(mutatedDocument, fc.option(fc.constantFrom(`"__proto__":{"polluted":true}`, `"constructor":{"prototype":{"polluted":true}}`), { nil: undefined }))
  .map(([{ kind, doc }, member]) => {
    const text = JSON.stringify(doc) ?? "null";
    if (!member || !text.startsWith("{")) return { kind, text };
    return { kind, text: `{${member}${text === "{}" ? "" : ","}${text.slice(1)}` };
  });
