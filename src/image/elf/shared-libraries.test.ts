import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdir, mkdtemp, realpath, rm, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { basename, join } from "node:path";
import { isPithError } from "../../shared/errors.ts";
import { readElfInfo } from "./elf-file.ts";
import { DEFAULT_LIBRARY_DIRS, resolveSharedLibraries, type ResolvedLibrary } from "./shared-libraries.ts";

/** Realpaths of everything ldd says the program loads, except the kernel-provided vDSO. */
async function lddRealpaths(executable: string): Promise<string[]> {
  const out = execFileSync("ldd", [executable], { encoding: "utf8" });
  const paths: string[] = [];
  for (const line of out.split("\n")) {
    if (line.includes("linux-vdso")) continue;
    const m = /=>\s+(\/\S+)/.exec(line) ?? /^\s+(\/\S+)/.exec(line);
    if (m) paths.push(await realpath(m[1]!));
  }
  return paths.sort();
}

function assertWellFormed(libs: ResolvedLibrary[], executable: string): void {
  const sonames = libs.map((l) => l.soname);
  assert.equal(new Set(sonames).size, sonames.length, `duplicate sonames: ${sonames.join(", ")}`);
  const interp = libs[0]!;
  assert.equal(interp.installPath, execFileSync("readelf", ["-lW", executable], { encoding: "utf8" }).match(/interpreter: (.+)\]/)?.[1]);
  assert.equal(interp.soname, basename(interp.installPath));
  assert.equal(interp.neededBy, executable);
  for (const lib of libs) {
    assert.ok(lib.path.startsWith("/") && lib.installPath.startsWith("/"), JSON.stringify(lib));
    assert.equal(basename(lib.installPath), lib.soname);
    assert.ok(existsSync(lib.installPath), `${lib.installPath} exists on the host`);
  }
}

describe("resolveSharedLibraries on real binaries agrees with ldd", () => {
  for (const executable of ["/usr/bin/node", "/bin/ls"]) {
    test(executable, async () => {
      const libs = await resolveSharedLibraries(executable);
      assertWellFormed(libs, executable);
      assert.deepEqual(libs.map((l) => l.path).sort(), await lddRealpaths(executable));
      for (const lib of libs) assert.equal(lib.path, await realpath(lib.path), "paths are already resolved");
    });
  }

  test("/bin/ls: breadth-first, with the loader first and install paths in the search dirs", async () => {
    const libs = await resolveSharedLibraries("/bin/ls");
    const direct = (await readElfInfo("/bin/ls")).needed;
    // The loader, then the executable's own DT_NEEDED in order, then what those pull in.
    assert.deepEqual(libs.slice(1, 1 + direct.length).map((l) => l.soname), direct);
    for (const lib of libs.slice(1, 1 + direct.length)) assert.equal(lib.neededBy, "/bin/ls");
    const libc = libs.find((l) => l.soname === "libc.so.6")!;
    assert.equal(libc.installPath, "/lib/x86_64-linux-gnu/libc.so.6");
    // libc lists the loader as DT_NEEDED; it must match the loader entry, not add a second copy.
    assert.ok((await readElfInfo(libc.installPath)).needed.includes(libs[0]!.soname));
  });

  test("is deterministic", async () => {
    assert.deepEqual(await resolveSharedLibraries("/usr/bin/node"), await resolveSharedLibraries("/usr/bin/node"));
  });
});

describe("resolveSharedLibraries on programs built here", () => {
  let dir: string;
  const gcc = (...args: string[]) => execFileSync("gcc", args, { cwd: dir, stdio: ["ignore", "ignore", "inherit"] });

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), "pith-solibs-"));
    await mkdir(join(dir, "app/bin"), { recursive: true });
    await mkdir(join(dir, "app/lib"), { recursive: true });
    await mkdir(join(dir, "other"), { recursive: true });
    await writeFile(join(dir, "bar.c"), "int bar(void) { return 42; }\n");
    await writeFile(join(dir, "foo.c"), "int bar(void);\nint foo(void) { return bar(); }\n");
    await writeFile(join(dir, "main.c"), "int foo(void);\nint main(void) { return foo() == 42 ? 0 : 1; }\n");
    await writeFile(join(dir, "static.c"), "int main(void) { return 0; }\n");

    // libbar.so.1 is a symlink to the real file, as distributions install them.
    gcc("-shared", "-fPIC", "-Wl,-soname,libbar.so.1", "-o", "app/lib/libbar.so.1.2.3", "bar.c");
    await symlink("libbar.so.1.2.3", join(dir, "app/lib/libbar.so.1"));
    gcc("-shared", "-fPIC", "-Wl,-soname,libfoo.so", "-o", "app/lib/libfoo.so", "foo.c", "app/lib/libbar.so.1", "-Wl,--enable-new-dtags", "-Wl,-rpath,$ORIGIN");
    gcc("-o", "app/bin/main", "main.c", "app/lib/libfoo.so", "-Wl,--enable-new-dtags", "-Wl,-rpath,$ORIGIN/../lib");
    gcc("-o", "app/bin/main-no-rpath", "main.c", "app/lib/libfoo.so", "-Wl,-rpath-link,app/lib");
    gcc("-o", "app/bin/bad-interp", "main.c", "app/lib/libfoo.so", "-Wl,--dynamic-linker=/nonexistent/ld-pith.so.2");
    gcc("-static", "-o", "app/bin/static", "static.c");
    // Sanity check that the fixture really runs, so the expectations below describe a working program.
    execFileSync(join(dir, "app/bin/main"));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  test("static executables need nothing", async () => {
    assert.deepEqual(await resolveSharedLibraries(join(dir, "app/bin/static")), []);
  });

  test("follows $ORIGIN runpaths transitively, breadth-first", async () => {
    const main = join(dir, "app/bin/main");
    const libs = await resolveSharedLibraries(main);
    assertWellFormed(libs, main);
    const sonames = libs.map((l) => l.soname);
    assert.deepEqual(sonames.slice(1, 3), ["libfoo.so", "libc.so.6"]);
    assert.ok(sonames.indexOf("libbar.so.1") > sonames.indexOf("libc.so.6"), "libbar comes from the second level");

    const foo = libs.find((l) => l.soname === "libfoo.so")!;
    assert.equal(foo.installPath, join(dir, "app/lib/libfoo.so"), "$ORIGIN/../lib is normalised");
    assert.equal(foo.neededBy, main);
    const bar = libs.find((l) => l.soname === "libbar.so.1")!;
    assert.equal(bar.installPath, join(dir, "app/lib/libbar.so.1"));
    assert.equal(bar.path, join(await realpath(dir), "app/lib/libbar.so.1.2.3"), "symlinks resolved");
    assert.equal(bar.neededBy, foo.installPath);

    assert.deepEqual(libs.map((l) => l.path).sort(), await lddRealpaths(main));
  });

  test("a missing library names itself and who needs it", async () => {
    const main = join(dir, "app/bin/main-no-rpath");
    await assert.rejects(resolveSharedLibraries(main), (e: unknown) => {
      assert.ok(isPithError(e));
      assert.equal(e.code, "ELF_LIBRARY_NOT_FOUND");
      assert.equal(e.kind, "user");
      assert.match(e.message, /libfoo\.so, needed by .*main-no-rpath/);
      assert.match(e.hint ?? "", /Install the package that provides libfoo\.so/);
      assert.match(e.hint ?? "", /\/usr\/lib\/x86_64-linux-gnu/);
      return true;
    });
  });

  test("searchDirs replaces the default directories", async () => {
    const main = join(dir, "app/bin/main-no-rpath");
    const libs = await resolveSharedLibraries(main, { searchDirs: [join(dir, "app/lib"), ...DEFAULT_LIBRARY_DIRS] });
    assert.ok(libs.some((l) => l.soname === "libfoo.so"));
    assert.ok(libs.some((l) => l.soname === "libbar.so.1"));
    // Without the default dirs, libc cannot be found.
    await assert.rejects(resolveSharedLibraries(main, { searchDirs: [join(dir, "app/lib")] }), /libc\.so\.6, needed by/);
  });

  test("a library of the wrong kind is passed over, as ld.so does", async () => {
    const decoys = join(dir, "other");
    // A 32-bit file and a text file where libfoo.so would be found first.
    await writeFile(join(decoys, "libfoo.so"), Buffer.concat([Buffer.from([0x7f, 0x45, 0x4c, 0x46, 1, 1, 1]), Buffer.alloc(45)]));
    await mkdir(join(decoys, "text"), { recursive: true });
    await writeFile(join(decoys, "text/libfoo.so"), "INPUT(-lfoo)\n");
    const libs = await resolveSharedLibraries(join(dir, "app/bin/main-no-rpath"), {
      searchDirs: [decoys, join(decoys, "text"), join(dir, "app/lib"), ...DEFAULT_LIBRARY_DIRS],
    });
    assert.equal(libs.find((l) => l.soname === "libfoo.so")?.installPath, join(dir, "app/lib/libfoo.so"));
  });

  test("a missing loader is a clear error", async () => {
    await assert.rejects(resolveSharedLibraries(join(dir, "app/bin/bad-interp")), (e: unknown) => {
      assert.ok(isPithError(e));
      assert.equal(e.code, "ELF_INTERPRETER_NOT_FOUND");
      assert.match(e.message, /needs the dynamic loader \/nonexistent\/ld-pith\.so\.2/);
      return true;
    });
  });

  test("a non-ELF executable is rejected", async () => {
    const script = join(dir, "app/bin/script");
    await writeFile(script, "#!/usr/bin/env node\n");
    await assert.rejects(resolveSharedLibraries(script), (e: unknown) => isPithError(e) && e.code === "ELF_UNSUPPORTED");
  });
});
