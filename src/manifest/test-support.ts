import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import type { TestContext } from "node:test";
import { ManifestError, parseAppManifest, type Problem } from "./app-manifest.ts";

/** Just the ELF magic: enough for the manifest check, which never executes the file. */
export const FAKE_ELF = new Uint8Array([0x7f, 0x45, 0x4c, 0x46, 2, 1, 1, 0]);

/** A throwaway app directory holding `files`, removed when the test ends. */
export function tempApp(t: TestContext, files: Record<string, string | Uint8Array> = {}): string {
  const dir = mkdtempSync(path.join(tmpdir(), "pith-manifest-"));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  for (const [name, content] of Object.entries(files)) {
    mkdirSync(path.dirname(path.join(dir, name)), { recursive: true });
    writeFileSync(path.join(dir, name), content);
  }
  return dir;
}

/** Joins lines so a test can read off line numbers: the Nth argument is line N. */
export const yaml = (...lines: string[]): string => `${lines.join("\n")}\n`;

export function problemsIn(text: string, dir: string): readonly Problem[] {
  try {
    parseAppManifest(text, path.join(dir, "pith.yaml"));
  } catch (e) {
    assert.ok(e instanceof ManifestError, `expected a ManifestError, got ${String(e)}`);
    return e.problems;
  }
  assert.fail("expected the manifest to be rejected");
}

/** Asserts the manifest has exactly one problem, on `line`, whose message contains `fragment`. */
export function onlyProblem(text: string, dir: string, line: number, fragment: string): Problem {
  const problems = problemsIn(text, dir);
  assert.equal(problems.length, 1, `expected one problem, got:\n${problems.map((p) => `${p.line}: ${p.message}`).join("\n")}`);
  const [problem] = problems as [Problem];
  assert.equal(problem.line, line, `wrong line for: ${problem.message}`);
  assert.ok(problem.message.includes(fragment), `"${problem.message}" does not contain "${fragment}"`);
  return problem;
}
