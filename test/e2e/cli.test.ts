import assert from "node:assert/strict";
import { execFileSync, spawn, spawnSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, test } from "node:test";
import { pithRoot } from "../../src/shared/paths.ts";
import { appImage } from "../support/images.ts";
import { httpGet, missingForMachines } from "../support/machines.ts";

const PITH = join(pithRoot(), "bin/pith.js");
const env = { ...process.env, PITH_ACCEL: process.env.PITH_ACCEL ?? "tcg" };
/** Why `pith kernel prune` cannot run here: it names what is current from Debian's kernel source package. */
function missingKernelSource(): string | false {
  return spawnSync("dpkg-query", ["-W", "linux-source-6.1"]).status === 0 ? false : "Debian's linux-source-6.1 is not installed (bash scripts/setup.sh installs it)";
}

const pith = (args: string[], timeout = 120_000) => spawnSync(process.execPath, [PITH, ...args], { encoding: "utf8", env, timeout });

describe("pith CLI", { timeout: 900_000 }, () => {
  test("a bad manifest is rejected with file, line and how to fix it, and builds nothing", () => {
    const dir = mkdtempSync(join(tmpdir(), "pith-bad-"));
    try {
      writeFileSync(join(dir, "main.ts"), "");
      writeFileSync(join(dir, "pith.yaml"), "name: bad\nentry: main.ts\nmemroy: 64M\nlisten: [70000]\n");
      const r = pith(["build", dir]);
      assert.equal(r.status, 1);
      assert.match(r.stderr, /pith\.yaml:3:1: unknown field "memroy"\n\s+fix: did you mean "memory"\?/);
      assert.match(r.stderr, /pith\.yaml:4:\d+: listen\[0\]: port 70000 is out of range/);
      assert.doesNotMatch(r.stderr, /at .*\.ts:\d+/, "no stack trace for a user error");
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test("a memory limit too small for the image's root filesystem is refused at build time", () => {
    const dir = mkdtempSync(join(tmpdir(), "pith-small-"));
    try {
      execFileSync("cp", ["-r", `${join(pithRoot(), "examples/batch")}/.`, dir]);
      execFileSync("sed", ["-i", "s/^memory: .*/memory: 32M/", join(dir, "pith.yaml")]);
      const r = pith(["build", dir], 600_000);
      assert.equal(r.status, 1);
      assert.match(r.stderr, /memory: 32M is too small for this image: its root filesystem is \d+ MiB/);
      assert.match(r.stderr, /fix: set memory to at least \d+M/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test("a missing app directory and an unknown image say what to do", () => {
    const missing = pith(["build", "/nonexistent/app"]);
    assert.equal(missing.status, 1);
    assert.match(missing.stderr, /does not exist/);
    const unknown = pith(["inspect", "no-such-image"]);
    assert.equal(unknown.status, 1);
    assert.match(unknown.stderr, /no image named or with digest no-such-image\n\s+fix: see `pith images`/);
  });

  test("--help lists the commands; bad flags fail", () => {
    const help = pith(["--help"]);
    assert.equal(help.status, 0);
    for (const command of ["build", "run", "inspect", "images", "kernel"]) assert.match(help.stdout, new RegExp(`\\n\\s+${command}\\b`));
    assert.notEqual(pith(["run", "examples/batch", "--env", "NOEQUALS"]).status, 0);
  });

  test("pith run passes the app's exit code to the shell, and --env overrides the image's", { skip: missingForMachines() }, async () => {
    await appImage("examples/batch");
    const plain = pith(["run", "examples/batch"], 300_000);
    assert.equal(plain.status, 3, plain.stderr);
    assert.match(plain.stdout, /batch: 17984 primes below 200000/);
    assert.match(plain.stderr, /stopped: app exited with code 3/);
    const chosen = pith(["run", "examples/batch", "--env", "EXIT_CODE=5", "--env", "PRIMES_BELOW=1000"], 300_000);
    assert.equal(chosen.status, 5, chosen.stderr);
    assert.match(chosen.stdout, /batch: 168 primes below 1000/);
  });

  test("pith run prints the URL and timings, and SIGTERM leaves nothing running", { skip: missingForMachines() }, async () => {
    execFileSync("make", ["-s", "-C", "examples/static-c"]);
    await appImage("examples/static-c");
    const child = spawn(process.execPath, [PITH, "run", "examples/static-c"], { env, stdio: ["ignore", "pipe", "pipe"] });
    let stderr = "";
    child.stderr.setEncoding("utf8").on("data", (c: string) => (stderr += c));
    const exited = new Promise<number | null>((resolve) => child.once("exit", resolve));
    try {
      const deadline = Date.now() + 120_000;
      while (!/ready in/.test(stderr) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
      assert.match(stderr, /ready in [\d.]+ ms \(vmm [\d.]+ ms, kernel [\d.]+ ms, init [\d.]+ ms, app [\d.]+ ms\)/);
      const url = /8080 -> (http:\/\/127\.0\.0\.1:\d+\/)/.exec(stderr)?.[1];
      assert.ok(url, stderr);
      assert.equal((await httpGet(url)).status, 200);
      const id = /machine (static-c-[0-9a-f]+) started/.exec(stderr)![1]!;
      child.kill("SIGTERM");
      assert.equal(await exited, 0);
      assert.match(stderr, /stopped: app exited with code 0/);
      const left = spawnSync("pgrep", ["-f", `pith:run/${id}`]);
      assert.equal(left.status, 1, `no QEMU left for ${id}`);
    } finally {
      child.kill("SIGKILL");
    }
  });

  test("inspect --json, images and kernel ls describe what is stored", { skip: missingForMachines() }, async () => {
    const image = await appImage("examples/static-c");
    const inspect = pith(["inspect", image.record.digest, "--json"]);
    assert.equal(inspect.status, 0, inspect.stderr);
    const info = JSON.parse(inspect.stdout) as { digest: string; files: { path: string; size: number }[]; kernel: { options: number }; capabilities: object };
    assert.equal(info.digest, image.record.digest);
    assert.ok(info.files.some((f) => f.path === "/app/server" && f.size > 0));
    assert.ok(info.kernel.options > 0);
    const human = pith(["inspect", "static-c"]);
    assert.match(human.stdout, /listen\s+8080\/http/);
    const images = pith(["images"]);
    assert.match(images.stdout, /^NAME\s+DIGEST/m);
    assert.match(images.stdout, /^static-c\s+[0-9a-f]{12}\s+native/m);
    const kernels = pith(["kernel", "ls"]);
    assert.match(kernels.stdout, /base\+network\s+\d+/);
  });

  test("kernel prune lists, then removes, a source version no build uses, and leaves the current one", { skip: missingKernelSource() }, () => {
    const home = mkdtempSync(join(tmpdir(), "pith-prune-cli-"));
    try {
      const homeEnv = { ...env, PITH_HOME: home };
      const inHome = (args: string[]) => spawnSync(process.execPath, [PITH, ...args], { encoding: "utf8", env: homeEnv, timeout: 30_000 });
      assert.match(inHome(["kernel", "prune"]).stdout, /^nothing to prune: everything cached is from \S+\+pith\.[0-9a-f]{12}\n$/);
      mkdirSync(join(home, "kernel", "src", "5.10.0-1"), { recursive: true });
      writeFileSync(join(home, "kernel", "src", "5.10.0-1", "Makefile"), "all:\n");
      const dry = inHome(["kernel", "prune", "--dry-run"]);
      assert.equal(dry.status, 0, dry.stderr);
      assert.match(dry.stdout, /^source\s+5\.10\.0-1\s+\d/m);
      assert.match(dry.stdout, /would free /);
      assert.ok(existsSync(join(home, "kernel", "src", "5.10.0-1")), "a dry run removes nothing");
      const real = inHome(["kernel", "prune"]);
      assert.equal(real.status, 0, real.stderr);
      assert.match(real.stdout, /freed /);
      assert.equal(existsSync(join(home, "kernel", "src", "5.10.0-1")), false);
    } finally {
      rmSync(home, { recursive: true, force: true });
    }
  });

  test("pith snapshots create, ls and rm manage a snapshot; rm of an unknown one says so", { skip: missingForMachines() }, async () => {
    const image = await appImage("examples/static-c");
    // An env of this test's own gives a snapshot key no other test or user shares.
    const marker = `SNAPSHOT_CLI_TEST=${process.pid}`;
    const created = pith(["snapshots", "create", image.record.digest, "-e", marker], 300_000);
    assert.equal(created.status, 0, created.stderr);
    assert.match(created.stderr, /saved a snapshot of static-c: [\d.]+ MiB/);
    const [key, size] = created.stdout.trim().split(/\s+/);
    assert.match(key ?? "", /^[0-9a-f]{12}$/);
    assert.ok(size);

    const listed = JSON.parse(pith(["snapshots", "ls", "-o", "json"]).stdout) as { key: string; image: { digest: string }; bytes: number }[];
    const mine = listed.find((s) => s.key.startsWith(key!));
    assert.equal(mine?.image.digest, image.record.digest);
    assert.ok((mine?.bytes ?? 0) > 1024 * 1024);
    assert.match(pith(["snapshots"]).stdout, new RegExp(`^${key}\\s+static-c\\s`, "m"));

    const removed = pith(["snapshots", "rm", key!]);
    assert.equal(removed.status, 0, removed.stderr);
    assert.match(removed.stdout, new RegExp(`removed ${key} \\(static-c`));
    assert.ok(!(JSON.parse(pith(["snapshots", "ls", "-o", "json"]).stdout) as { key: string }[]).some((s) => s.key.startsWith(key!)));

    const again = pith(["snapshots", "rm", key!]);
    assert.equal(again.status, 1);
    assert.match(again.stderr, /no snapshot matches/);
  });
});
