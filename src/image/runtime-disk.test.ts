import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { describe, test, type TestContext } from "node:test";
import { sha256 } from "../shared/hash.ts";
import { isPithError } from "../shared/errors.ts";
import { writeRuntimeDisk, type DiskFile } from "./runtime-disk.ts";

const skip = (() => {
  try {
    execFileSync("mke2fs", ["-V"], { stdio: "ignore" });
    return undefined;
  } catch {
    return "needs mke2fs and debugfs (apt-get install e2fsprogs)";
  }
})();

function scratch(t: TestContext): string {
  const dir = mkdtempSync(path.join(tmpdir(), "pith-disk-test-"));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

describe("the runtime disk", { skip }, () => {
  test("a tree of files: the same bytes whatever the order given or the host's times", async (t) => {
    const dir = scratch(t);
    const source = (name: string, content: string): string => {
      const file = path.join(dir, name);
      writeFileSync(file, content);
      return file;
    };
    const files: Record<string, DiskFile> = {
      node: { source: source("node", "runtime"), mode: 0o555 },
      "node_modules/a/package.json": { source: source("a.json", "{}"), mode: 0o444 },
      "node_modules/a/lib/index.js": { source: source("a.js", "module.exports = 1"), mode: 0o444 },
    };
    await writeRuntimeDisk(files, path.join(dir, "one.ext2"));
    execFileSync("touch", ["-d", "2001-01-01", path.join(dir, "a.js")]);
    const reversed = Object.fromEntries(Object.entries(files).reverse());
    await writeRuntimeDisk(reversed, path.join(dir, "two.ext2"));
    assert.equal(sha256(readFileSync(path.join(dir, "one.ext2"))), sha256(readFileSync(path.join(dir, "two.ext2"))));
    const listing = execFileSync("debugfs", ["-R", "ls -l /node_modules/a/lib", path.join(dir, "one.ext2")], { encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] });
    assert.match(listing, /100444 \(1\)\s+0\s+0\s+18\s+1-Jan-1970 00:00 index\.js/);
  });

  test("a checked file swapped for a symlink to a host file is refused, not copied", async (t) => {
    const dir = scratch(t);
    const file = path.join(dir, "index.js");
    writeFileSync(file, "module.exports = 1");
    const { dev, ino } = statSync(file);
    const files = { "node_modules/a/index.js": { source: file, mode: 0o444, identity: { dev, ino } } };
    await writeRuntimeDisk(files, path.join(dir, "ok.ext2"));
    rmSync(file);
    symlinkSync("/etc/hostname", file);
    await assert.rejects(writeRuntimeDisk(files, path.join(dir, "swapped.ext2")), (e) => isPithError(e) && e.code === "DISK_SOURCE_CHANGED");
  });

  test("a name that could smuggle a debugfs command is refused before anything is written", async (t) => {
    const dir = scratch(t);
    writeFileSync(path.join(dir, "x"), "x");
    for (const name of ['a"\nwrite /etc/hostname b', "a\\b", "../x", "/abs"]) {
      await assert.rejects(writeRuntimeDisk({ [name]: { source: path.join(dir, "x"), mode: 0o444 } }, path.join(dir, "out.ext2")),
        (e) => isPithError(e) && e.code === "DISK_BAD_PATH", JSON.stringify(name));
    }
  });
});
