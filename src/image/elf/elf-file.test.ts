import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtemp, open, rm, writeFile, readFile, mkdir } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { isPithError } from "../../shared/errors.ts";
import { readElfInfo } from "./elf-file.ts";

/** What binutils says, as the reference our reader must agree with. */
function readelfNeeded(path: string): string[] {
  const out = execFileSync("readelf", ["-dW", path], { encoding: "utf8" });
  return [...out.matchAll(/\(NEEDED\)\s+Shared library: \[(.+)\]/g)].map((m) => m[1]!);
}

function readelfInterpreter(path: string): string | undefined {
  const out = execFileSync("readelf", ["-lW", path], { encoding: "utf8" });
  return /Requesting program interpreter: (.+)\]/.exec(out)?.[1];
}

const rejectsWith = (code: string, pattern?: RegExp) => (e: unknown) => {
  assert.ok(isPithError(e), `expected a PithError, got ${String(e)}`);
  assert.equal(e.code, code, e.message);
  if (pattern) assert.match(e.message, pattern);
  assert.ok(e.hint, "a user-facing error should carry a hint");
  return true;
};

let dir: string;
before(async () => {
  dir = await mkdtemp(join(tmpdir(), "pith-elf-"));
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe("readElfInfo on real binaries", () => {
  for (const path of ["/usr/bin/node", "/bin/ls"]) {
    test(path, async () => {
      const info = await readElfInfo(path);
      assert.equal(info.isStatic, false);
      assert.equal(info.interpreter, readelfInterpreter(path));
      assert.ok(info.interpreter?.startsWith("/"));
      assert.deepEqual(info.needed, readelfNeeded(path));
      assert.ok(info.needed.includes("libc.so.6"));
      assert.deepEqual(info.runpath, []);
    });
  }

  test("a shared library has needed entries but no interpreter", async () => {
    const info = await readElfInfo("/lib/x86_64-linux-gnu/libselinux.so.1");
    assert.equal(info.interpreter, undefined);
    assert.equal(info.isStatic, false);
    assert.deepEqual(info.needed, readelfNeeded("/lib/x86_64-linux-gnu/libselinux.so.1"));
  });
});

describe("readElfInfo on binaries compiled here", () => {
  const source = "int main(void) { return 0; }\n";

  test("gcc -static gives a static executable", async () => {
    await writeFile(join(dir, "main.c"), source);
    const out = join(dir, "static");
    execFileSync("gcc", ["-static", "-o", out, join(dir, "main.c")]);
    assert.deepEqual(await readElfInfo(out), { interpreter: undefined, needed: [], runpath: [], isStatic: true });
  });

  test("DT_RUNPATH is split on ':' and left unexpanded", async () => {
    await writeFile(join(dir, "main.c"), source);
    const out = join(dir, "with-runpath");
    execFileSync("gcc", ["-o", out, join(dir, "main.c"), "-Wl,--enable-new-dtags", "-Wl,-rpath,$ORIGIN/../lib:/opt/x/lib"]);
    const info = await readElfInfo(out);
    assert.deepEqual(info.runpath, ["$ORIGIN/../lib", "/opt/x/lib"]);
    assert.deepEqual(info.needed, readelfNeeded(out));
  });

  test("DT_RPATH is read when there is no DT_RUNPATH", async () => {
    await writeFile(join(dir, "main.c"), source);
    const out = join(dir, "with-rpath");
    execFileSync("gcc", ["-o", out, join(dir, "main.c"), "-Wl,--disable-new-dtags", "-Wl,-rpath,/opt/a:/opt/b"]);
    assert.match(execFileSync("readelf", ["-d", out], { encoding: "utf8" }), /\(RPATH\)/);
    assert.deepEqual((await readElfInfo(out)).runpath, ["/opt/a", "/opt/b"]);
  });
});

describe("readElfInfo rejects what it cannot read", () => {
  test("a text file", async () => {
    const path = join(dir, "notes.txt");
    await writeFile(path, "hello, this is not a program\n");
    await assert.rejects(readElfInfo(path), rejectsWith("ELF_UNSUPPORTED", /notes\.txt is not an ELF binary/));
  });

  test("a script says it is a script", async () => {
    const path = join(dir, "run.sh");
    await writeFile(path, "#!/bin/sh\necho hi\n");
    await assert.rejects(readElfInfo(path), rejectsWith("ELF_UNSUPPORTED", /is a script \(#!\/bin\/sh\)/));
  });

  test("an empty file", async () => {
    const path = join(dir, "empty");
    await writeFile(path, "");
    await assert.rejects(readElfInfo(path), rejectsWith("ELF_UNSUPPORTED", /is an empty file/));
  });

  test("a 32-bit ELF", async () => {
    const path = join(dir, "elf32");
    await writeFile(path, Buffer.concat([Buffer.from([0x7f, 0x45, 0x4c, 0x46, 1, 1, 1]), Buffer.alloc(45)]));
    await assert.rejects(readElfInfo(path), (e: unknown) => {
      rejectsWith("ELF_UNSUPPORTED", /is a 32-bit ELF binary/)(e);
      assert.match((e as Error & { hint: string }).hint, /64-bit little-endian/);
      return true;
    });
  });

  test("a big-endian ELF", async () => {
    const path = join(dir, "elf-be");
    await writeFile(path, Buffer.concat([Buffer.from([0x7f, 0x45, 0x4c, 0x46, 2, 2, 1]), Buffer.alloc(57)]));
    await assert.rejects(readElfInfo(path), rejectsWith("ELF_UNSUPPORTED", /is a big-endian ELF binary/));
  });

  test("a missing file", async () => {
    await assert.rejects(readElfInfo(join(dir, "nope")), rejectsWith("ELF_NOT_FOUND", /does not exist/));
  });

  test("a directory", async () => {
    await mkdir(join(dir, "a-dir"), { recursive: true });
    await assert.rejects(readElfInfo(join(dir, "a-dir")), rejectsWith("ELF_UNSUPPORTED", /is a directory/));
  });

  test("truncated copies of /bin/ls", async () => {
    const whole = await readFile("/bin/ls");
    // Cut inside: the ident, the ELF header, the program headers, and before the dynamic section.
    for (const size of [5, 20, 63, 100, 700, 4096, 100_000]) {
      const path = join(dir, `ls-${size}`);
      await writeFile(path, whole.subarray(0, size));
      await assert.rejects(readElfInfo(path), rejectsWith("ELF_TRUNCATED", /is a truncated ELF file/), `size ${size}`);
    }
  });

  test("corrupted headers give PithErrors, never crashes", async () => {
    const whole = await readFile("/bin/ls");
    const path = join(dir, "ls-corrupt");
    // A fixed-seed generator, so a failure reproduces.
    let seed = 12345;
    const random = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
    for (let round = 0; round < 300; round++) {
      const copy = Buffer.from(whole);
      // Corrupt the ELF header and program headers, past the ident so it stays "64-bit LE ELF".
      for (let k = 0; k < 4; k++) copy[16 + Math.floor(random() * (64 + 13 * 56 - 16))] = Math.floor(random() * 256);
      const fh = await open(path, "w");
      await fh.write(copy);
      await fh.close();
      try {
        await readElfInfo(path);
      } catch (e) {
        assert.ok(isPithError(e), `round ${round}: expected a PithError, got ${String(e)}`);
        assert.match(e.code, /^ELF_(TRUNCATED|MALFORMED)$/);
      }
    }
  });
});
