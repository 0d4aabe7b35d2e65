import assert from "node:assert/strict";
import { test } from "node:test";
import fc from "fast-check";
import { stringify } from "yaml";
import { ManifestError, parseAppManifest } from "./app-manifest.ts";
import { FIELDS } from "./validate.ts";
import { tempApp } from "./test-support.ts";

/**
 * Whatever text a pith.yaml holds, reading it ends in a manifest or in a ManifestError whose
 * every problem has a place and a message: never another exception, never a hang.
 */
const RUNS = { numRuns: 1500, interruptAfterTimeLimit: 4_000 };

function outcome(text: string, file: string): "ok" | "rejected" {
  try {
    parseAppManifest(text, file);
    return "ok";
  } catch (e) {
    assert.ok(e instanceof ManifestError, `not a ManifestError: ${e instanceof Error ? e.stack : String(e)}\n--- for:\n${text.slice(0, 2000)}`);
    assert.ok(e.problems.length > 0);
    for (const p of e.problems) {
      assert.ok(p.line >= 1 && p.column >= 1, `problem without a place: ${JSON.stringify(p)}`);
      assert.ok(p.message.length > 0, `problem without a message: ${JSON.stringify(p)}`);
    }
    return "rejected";
  }
}

const tricky = fc.constantFrom("__proto__", "constructor", "prototype", "toString", "hasOwnProperty", "../x", "a/b", "C:\\x", "\u0000", "é", "𝕏", "", " ", "PITH_X", "-", "*", "&a", "!!binary");
const key = fc.oneof(fc.constantFrom(...FIELDS), tricky, fc.string({ maxLength: 12 }));
const scalar = fc.oneof(fc.string({ maxLength: 40 }), fc.string({ unit: "grapheme", maxLength: 20 }), fc.integer(), fc.double(), fc.boolean(), fc.constant(null), tricky, fc.constantFrom("1G", "512M", "30s", "0", "-1", "99999999999999999999", "8080", "127.0.0.1:5432", "ready()", "none"));
const value = fc.letrec<{ v: unknown }>((tie) => ({
  v: fc.oneof({ depthSize: "small", withCrossShrink: true }, scalar, fc.array(tie("v"), { maxLength: 4 }), fc.dictionary(fc.oneof(key, fc.string({ maxLength: 6 })), tie("v"), { maxKeys: 4 })),
})).v;

test("random and mutated manifests: a manifest or located problems, nothing else", (t) => {
  const dir = tempApp(t, { "main.ts": "", "server": "\u007fELF" });
  const file = `${dir}/pith.yaml`;
  const base = { name: "app", entry: "main.ts", memory: "256M", vcpus: 1, listen: [8080], egress: ["127.0.0.1:5432"], env: { A: "b" }, readiness: "ready()", readyTimeout: "30s" };
  // A valid manifest with fields replaced, added or removed at random.
  const mutated = fc
    .tuple(fc.dictionary(key, value, { maxKeys: 5 }), fc.subarray([...FIELDS]))
    .map(([changes, removed]) => {
      const doc: Record<string, unknown> = { ...base };
      for (const field of removed) delete doc[field];
      for (const [k, v] of Object.entries(changes)) Object.defineProperty(doc, k, { value: v, enumerable: true, configurable: true, writable: true });
      return stringify(doc);
    });
  fc.assert(fc.property(mutated, (text) => void outcome(text, file)), RUNS);
  fc.assert(fc.property(fc.string({ maxLength: 400 }), (text) => void outcome(text, file)), RUNS);
  fc.assert(fc.property(fc.string({ unit: "binary", maxLength: 400 }), (text) => void outcome(text, file)), RUNS);
  // YAML's own machinery: anchors, aliases, tags, documents, flow and block mixed.
  const yamlBits = fc.array(fc.constantFrom("name: a\n", "entry: main.ts\n", "&x ", "*x", "!!str ", "!!map ", "!!set ", "? ", "- ", "[", "]", "{", "}", ",", ": ", "\n  ", "---\n", "...\n", "'", '"', "|\n  ", ">\n  ", "#", "\t", "env: ", "listen: ", "<<: *x\n", "%YAML 1.2\n", "x"), { maxLength: 40 });
  fc.assert(fc.property(yamlBits, (bits) => void outcome(bits.join(""), file)), RUNS);
});

test("huge and deep manifests are rejected (or read) in bounded time", (t) => {
  const dir = tempApp(t, { "main.ts": "" });
  const file = `${dir}/pith.yaml`;
  const deep = (n: number) => `name: a\nentry: main.ts\nargs: ${"[".repeat(n)}${"]".repeat(n)}\n`;
  for (const text of [
    deep(10_000),
    `name: a\nentry: main.ts\nenv: ${"{a: ".repeat(2000)}1${"}".repeat(2000)}\n`,
    `name: a\nentry: main.ts\nargs: [${Array.from({ length: 100_000 }, () => "x").join(",")}]\n`,
    `name: ${"a".repeat(1_000_000)}\nentry: main.ts\n`,
    // Alias expansion ("billion laughs"): every level doubles.
    `a: &a ["x","x"]\n${Array.from({ length: 30 }, (_, i) => `l${i + 1}: &l${i + 1} [${i === 0 ? "*a,*a" : `*l${i},*l${i}`}]`).join("\n")}\nname: a\nentry: main.ts\nargs: *l30\n`,
  ]) {
    // CPU time, not wall time: what is bounded is the work, which a loaded host does not change.
    const started = process.cpuUsage();
    assert.equal(outcome(text, file), "rejected");
    const { user, system } = process.cpuUsage(started);
    assert.ok((user + system) / 1000 < 5000, `took ${Math.round((user + system) / 1000)} ms of CPU`);
  }
});
