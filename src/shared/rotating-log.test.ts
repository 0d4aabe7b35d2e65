import assert from "node:assert/strict";
import { mkdtemp, readFile, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { openRotatingLog } from "./rotating-log.ts";

test("a rotating log keeps at most its limit in the file and one older file, 0600, losing no line at the turn", async (t) => {
  const dir = await mkdtemp(join(tmpdir(), "pith-rotating-log-"));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const path = join(dir, "access.log");
  const errors: Error[] = [];
  const log = openRotatingLog(path, (e) => errors.push(e), 1000);
  const lines = Array.from({ length: 250 }, (_, i) => `line ${String(i).padStart(3, "0")}\n`); // 9 bytes each
  for (const line of lines) log.write(line);
  await log.close();

  const current = await readFile(path, "utf8");
  const older = await readFile(`${path}.1`, "utf8");
  assert.ok(current.length <= 1000 && older.length <= 1000, `each file within the limit (${current.length}, ${older.length})`);
  // The newest lines, in order, across the turn: the older file then the current one.
  const kept = (older + current).split("\n").filter(Boolean);
  assert.deepEqual(kept, lines.slice(-kept.length).map((l) => l.trim()));
  assert.ok(kept.length >= 111, "at least a whole file's worth of the newest lines is kept");
  for (const file of [path, `${path}.1`]) assert.equal((await stat(file)).mode & 0o777, 0o600);
  assert.deepEqual(errors, []);
});

test("a rotating log that cannot be written reports it and goes on", async (t) => {
  const dir = await mkdtemp(join(tmpdir(), "pith-rotating-log-"));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const errors: Error[] = [];
  const log = openRotatingLog(join(dir, "missing-dir", "access.log"), (e) => errors.push(e), 100);
  for (let i = 0; i < 30; i++) log.write("a line that goes nowhere\n");
  await log.close();
  assert.ok(errors.length > 0, "the writer heard why");
});
