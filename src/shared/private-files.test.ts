import assert from "node:assert/strict";
import { once } from "node:events";
import { chmod, mkdir, mkdtemp, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { ensurePithHome, ensurePrivateDir, openPrivateAppendStream, tightenPrivateFiles, touchPrivateFile, writePrivateFile } from "./private-files.ts";

const modeOf = async (path: string): Promise<number> => (await stat(path)).mode & 0o777;

describe("private files", () => {
  let dir: string;
  let umask: number;
  const home = process.env.PITH_HOME;
  before(async () => {
    umask = process.umask(0o022); // the usual umask, which would leave files 0644 and dirs 0755
    dir = await mkdtemp(join(tmpdir(), "pith-private-"));
  });
  after(async () => {
    process.umask(umask);
    if (home === undefined) delete process.env.PITH_HOME;
    else process.env.PITH_HOME = home;
    await rm(dir, { recursive: true, force: true });
  });

  it("creates directories and their missing parents 0700", async () => {
    await ensurePrivateDir(join(dir, "a", "b"));
    assert.equal(await modeOf(join(dir, "a")), 0o700);
    assert.equal(await modeOf(join(dir, "a", "b")), 0o700);
  });

  it("tightens an existing directory that is looser", async () => {
    await mkdir(join(dir, "loose"), { mode: 0o755 });
    await ensurePrivateDir(join(dir, "loose"));
    assert.equal(await modeOf(join(dir, "loose")), 0o700);
  });

  it("writes files 0600, also over an existing looser file", async () => {
    const path = join(dir, "secret");
    await writeFile(path, "old", { mode: 0o644 });
    await writePrivateFile(path, "new");
    assert.equal(await modeOf(path), 0o600);
    assert.equal(await readFile(path, "utf8"), "new");
    await assert.rejects(writePrivateFile(path, "again", "wx"), { code: "EEXIST" });
  });

  it("touches a file 0600 without changing what it holds, and tightens others' files", async () => {
    const path = join(dir, "db");
    await writeFile(path, "data", { mode: 0o666 });
    await chmod(path, 0o666);
    await touchPrivateFile(path);
    assert.equal(await modeOf(path), 0o600);
    assert.equal(await readFile(path, "utf8"), "data");
    await writeFile(join(dir, "wal"), "", { mode: 0o644 });
    await tightenPrivateFiles(join(dir, "wal"), join(dir, "missing"));
    assert.equal(await modeOf(join(dir, "wal")), 0o600);
  });

  it("opens append-only logs 0600", async () => {
    const stream = openPrivateAppendStream(join(dir, "access.log"));
    await once(stream, "open");
    stream.end("line\n");
    await once(stream, "close");
    assert.equal(await modeOf(join(dir, "access.log")), 0o600);
  });

  it("creates PITH_HOME 0700 and makes its subdirectories private", async () => {
    process.env.PITH_HOME = join(dir, "home-new");
    await ensurePrivateDir(join(dir, "home-new", "images", "names"));
    assert.equal(await modeOf(join(dir, "home-new")), 0o700);
    assert.equal(await modeOf(join(dir, "home-new", "images")), 0o700);
  });

  it("tightens a looser PITH_HOME and says so once, with why", async () => {
    process.env.PITH_HOME = join(dir, "home-loose");
    await mkdir(join(dir, "home-loose"), { mode: 0o755 });
    await chmod(join(dir, "home-loose"), 0o755);
    const warnings: string[] = [];
    await ensurePithHome((m) => warnings.push(m));
    await ensurePithHome((m) => warnings.push(m));
    assert.equal(await modeOf(join(dir, "home-loose")), 0o700);
    assert.equal(warnings.length, 1);
    assert.match(warnings[0]!, /home-loose had mode 0755.*tightened it to 0700 because it holds the API token/);
  });
});
