import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import { lstat, mkdir, mkdtemp, readFile, readlink, rm, stat, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { isPithError } from "../../shared/errors.ts";
import { writeCpio, type CpioEntry } from "./newc-writer.ts";

let dir: string;
let bigSource: string;
let bigContent: Buffer;
let smallSource: string;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), "pith-cpio-"));
  // Over two copy chunks and not a multiple of 4, so chunking and data padding both matter.
  bigContent = randomBytes(2 * 1024 * 1024 + 3);
  bigSource = join(dir, "big.bin");
  await writeFile(bigSource, bigContent);
  smallSource = join(dir, "small.txt");
  await writeFile(smallSource, "from disk\n");
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

const sampleEntries = (): CpioEntry[] => [
  { path: "usr/bin/big", kind: "file", mode: 0o755, source: bigSource },
  { path: "etc/hostname", kind: "file", mode: 0o644, data: new TextEncoder().encode("pith\n") },
  { path: "init", kind: "file", mode: 0o700, source: smallSource },
  { path: "empty", kind: "file", mode: 0o600, data: new Uint8Array(0) },
  { path: "tmp", kind: "dir", mode: 0o1777 },
  { path: "bin", kind: "symlink", mode: 0o777, target: "usr/bin" },
  { path: "dev/console", kind: "chardev", mode: 0o600, major: 5, minor: 1 },
  { path: "etc/a-b", kind: "file", mode: 0o644, data: new Uint8Array([1, 2, 3]) },
];

/** Archive order: sorted component-wise, with the implied parents (dev, etc, usr, usr/bin) added. */
const expectedOrder = ["bin", "dev", "dev/console", "empty", "etc", "etc/a-b", "etc/hostname", "init", "tmp", "usr", "usr/bin", "usr/bin/big"];

type Parsed = { name: string; ino: number; mode: number; uid: number; gid: number; nlink: number; mtime: number; size: number; rdevMajor: number; rdevMinor: number; data: Buffer };

/** An independent newc reader that also checks the alignment rules the kernel relies on. */
function parseNewc(archive: Buffer): Parsed[] {
  const out: Parsed[] = [];
  let at = 0;
  for (;;) {
    assert.equal(at % 4, 0, "each header starts 4-byte aligned");
    assert.equal(archive.toString("latin1", at, at + 6), "070701");
    const field = (i: number) => parseInt(archive.toString("latin1", at + 6 + i * 8, at + 14 + i * 8), 16);
    const nameSize = field(11);
    const size = field(6);
    const name = archive.toString("utf8", at + 110, at + 110 + nameSize - 1);
    assert.equal(archive[at + 110 + nameSize - 1], 0, "names are NUL-terminated");
    assert.equal(field(12), 0, "check field");
    const dataStart = Math.ceil((at + 110 + nameSize) / 4) * 4;
    const entry: Parsed = {
      name, ino: field(0), mode: field(1), uid: field(2), gid: field(3), nlink: field(4), mtime: field(5), size,
      rdevMajor: field(9), rdevMinor: field(10), data: archive.subarray(dataStart, dataStart + size),
    };
    assert.equal(field(7), 0, "devmajor");
    assert.equal(field(8), 0, "devminor");
    at = Math.ceil((dataStart + size) / 4) * 4;
    if (name === "TRAILER!!!") {
      assert.equal(at, archive.length, "nothing after the trailer");
      return out;
    }
    out.push(entry);
  }
}

describe("writeCpio", () => {
  test("cpio extracts what we wrote, with contents, modes, links and devices", async () => {
    const archive = join(dir, "sample.cpio");
    const { bytes } = await writeCpio(sampleEntries(), archive);
    assert.equal(bytes, (await stat(archive)).size);

    const root = join(dir, "extracted");
    await mkdir(root);
    execFileSync("sh", ["-c", `cpio -idmv --no-absolute-filenames < "${archive}"`], { cwd: root, stdio: ["ignore", "ignore", "pipe"] });

    assert.deepEqual(await readFile(join(root, "usr/bin/big")), bigContent);
    assert.equal(await readFile(join(root, "etc/hostname"), "utf8"), "pith\n");
    assert.equal(await readFile(join(root, "init"), "utf8"), "from disk\n");
    assert.equal((await readFile(join(root, "empty"))).length, 0);
    assert.deepEqual([...(await readFile(join(root, "etc/a-b")))], [1, 2, 3]);

    const modeOf = async (p: string) => (await lstat(join(root, p))).mode;
    assert.equal(await modeOf("usr/bin/big"), 0o100755);
    assert.equal(await modeOf("init"), 0o100700);
    assert.equal(await modeOf("empty"), 0o100600);
    assert.equal(await modeOf("tmp"), 0o041777);
    assert.equal(await modeOf("usr"), 0o040755, "implied parents are 0755 dirs");
    assert.equal(await modeOf("usr/bin"), 0o040755);

    assert.ok((await lstat(join(root, "bin"))).isSymbolicLink());
    assert.equal(await readlink(join(root, "bin")), "usr/bin");

    const console = await lstat(join(root, "dev/console"));
    assert.ok(console.isCharacterDevice());
    assert.equal(console.mode & 0o7777, 0o600);
    // Linux dev_t encoding, as glibc's major()/minor() decode it.
    assert.equal(((console.rdev >> 8) & 0xfff) | Math.floor(console.rdev / 2 ** 32) & ~0xfff, 5);
    assert.equal((console.rdev & 0xff) | ((console.rdev >> 12) & ~0xff), 1);

    assert.equal((await lstat(join(root, "etc/hostname"))).mtimeMs, 0, "cpio -m restores our mtime of 0");
  });

  test("cpio -t lists exactly the expected paths, in order", async () => {
    const archive = join(dir, "list.cpio");
    await writeCpio(sampleEntries(), archive);
    const listing = execFileSync("sh", ["-c", `cpio -t < "${archive}"`], { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });
    assert.deepEqual(listing.trim().split("\n"), expectedOrder);
    const verbose = execFileSync("sh", ["-c", `cpio -tv < "${archive}"`], { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });
    assert.match(verbose, /^crw------- .*5,\s+1 .*dev\/console$/m);
  });

  test("headers are deterministic: sequential inodes, zero times and owners, nlink by kind", async () => {
    const archive = join(dir, "parsed.cpio");
    await writeCpio(sampleEntries(), archive);
    const parsed = parseNewc(await readFile(archive));
    assert.deepEqual(parsed.map((e) => e.name), expectedOrder);
    parsed.forEach((e, i) => {
      assert.equal(e.ino, i + 1);
      assert.equal(e.mtime, 0);
      assert.equal(e.uid, 0);
      assert.equal(e.gid, 0);
      assert.equal(e.nlink, (e.mode & 0o170000) === 0o040000 ? 2 : 1, e.name);
    });
    const byName = new Map(parsed.map((e) => [e.name, e]));
    assert.equal(byName.get("bin")!.data.toString(), "usr/bin", "symlink target is the data, without NUL");
    assert.equal(byName.get("dev/console")!.rdevMajor, 5);
    assert.equal(byName.get("dev/console")!.rdevMinor, 1);
    assert.equal(byName.get("dev/console")!.mode, 0o020600);
    assert.deepEqual(byName.get("usr/bin/big")!.data, bigContent);
  });

  test("the same entries, in any order, give byte-identical archives", async () => {
    const first = join(dir, "first.cpio");
    const second = join(dir, "second.cpio");
    await writeCpio(sampleEntries(), first);
    await writeCpio(sampleEntries().reverse(), second);
    assert.ok((await readFile(first)).equals(await readFile(second)));
  });

  test("an empty archive is just the trailer", async () => {
    const archive = join(dir, "empty.cpio");
    const { bytes } = await writeCpio([], archive);
    assert.equal(bytes, 124); // 110-byte header + "TRAILER!!!\0" (11) padded to 4.
    assert.deepEqual(parseNewc(await readFile(archive)), []);
  });

  test("parents sort before children and siblings stay together", async () => {
    const archive = join(dir, "order.cpio");
    const entries: CpioEntry[] = ["a-b", "a/b", "a.txt", "a/b/c", "b", "a/c"].map((path) => ({ path, kind: "file", mode: 0o644, data: new Uint8Array(0) }));
    // "a/b" is a file, so "a/b/c" must be rejected; drop it for the ordering check.
    await writeCpio(entries.filter((e) => e.path !== "a/b/c"), archive);
    assert.deepEqual(parseNewc(await readFile(archive)).map((e) => e.name), ["a", "a/b", "a/c", "a-b", "a.txt", "b"]);
  });
});

describe("writeCpio rejects bad entries", () => {
  const file = (path: string): CpioEntry => ({ path, kind: "file", mode: 0o644, data: new Uint8Array(1) });
  const rejects = async (entries: CpioEntry[], code: string, pattern: RegExp) => {
    const archive = join(dir, "rejected.cpio");
    await assert.rejects(writeCpio(entries, archive), (e: unknown) => {
      assert.ok(isPithError(e), `expected a PithError, got ${String(e)}`);
      assert.equal(e.code, code, e.message);
      assert.match(e.message, pattern);
      return true;
    });
    assert.equal(existsSync(archive), false, "no partial archive is left behind");
  };

  for (const [path, why] of [
    ["/etc/passwd", /leading slash/],
    ["../escape", /"\.\." component/],
    ["a/../../b", /"\.\." component/],
    ["./init", /"\." component/],
    ["a//b", /empty component/],
    ["dir/", /empty component/],
    ["", /empty/],
  ] as const) {
    test(`path ${JSON.stringify(path)}`, () => rejects([file(path)], "CPIO_BAD_PATH", why));
  }

  test("duplicate paths", () => rejects([file("init"), file("etc/x"), file("init")], "CPIO_DUPLICATE_PATH", /init more than once/));

  test("a path inside a file or symlink", async () => {
    await rejects([file("a/b"), file("a/b/c")], "CPIO_BAD_PATH", /a\/b is a file, not a directory/);
    await rejects([{ path: "lib", kind: "symlink", mode: 0o777, target: "usr/lib" }, file("lib/x.so")], "CPIO_BAD_PATH", /lib is a symlink/);
  });

  test("modes with file type bits", () => rejects([{ ...file("x"), mode: 0o100644 }], "CPIO_BAD_ENTRY", /permission bits/));
  test("a file with both source and data", () => rejects([{ ...file("x"), source: smallSource }], "CPIO_BAD_ENTRY", /exactly one of source or data/));
  test("a symlink without a target", () => rejects([{ path: "l", kind: "symlink", mode: 0o777 }], "CPIO_BAD_ENTRY", /target/));
  test("a chardev without numbers", () => rejects([{ path: "dev/null", kind: "chardev", mode: 0o666, major: 1 }], "CPIO_BAD_ENTRY", /major and minor/));

  test("a missing source file, after some output was written", () =>
    rejects([file("a"), { path: "z", kind: "file", mode: 0o644, source: join(dir, "does-not-exist") }], "CPIO_SOURCE_UNREADABLE", /does-not-exist \(for z in the image\)/));

  test("a directory as source", () =>
    rejects([{ path: "z", kind: "file", mode: 0o644, source: dir }], "CPIO_SOURCE_UNREADABLE", /is not a regular file/));

  test("a checked file swapped (for a symlink to a host file) before it is copied", async () => {
    const checked = join(dir, "checked.conf");
    await writeFile(checked, "app config\n");
    const { dev, ino } = await stat(checked);
    const entry: CpioEntry = { path: "etc/app.conf", kind: "file", mode: 0o444, source: checked, identity: { dev, ino } };
    await writeCpio([entry], join(dir, "unchanged.cpio"));
    await rm(checked);
    await symlink("/etc/hostname", checked);
    await rejects([entry], "CPIO_SOURCE_CHANGED", /checked\.conf \(for etc\/app\.conf in the image\) is no longer the file that was checked/);
  });
});
