import assert from "node:assert/strict";
import { once } from "node:events";
import { mkdtemp, readdir, readFile, rm } from "node:fs/promises";
import { existsSync } from "node:fs";
import { createServer, connect, type Server } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, test, type TestContext } from "node:test";
import { startNetHelper, type NetHelperSpec } from "../../src/hypervisor/qemu/net-helper.ts";
import type { VmProcess } from "../../src/hypervisor/qemu/vm-process.ts";

// pith-net on its own, with this test in QEMU's place: its socket, its forwards, its egress
// dialer (reached directly at the unix socket libslirp would connect to).
const skip = existsSync("/usr/include/slirp/libslirp.h") ? undefined : "needs libslirp-dev (bash scripts/setup.sh)";

async function tcpServer(t: TestContext, hits: string[]): Promise<number> {
  const server: Server = createServer((socket) => {
    hits.push("connection");
    socket.end("hello from the host\n");
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  t.after(() => server.close());
  return (server.address() as { port: number }).port;
}

async function start(t: TestContext, spec: Partial<NetHelperSpec>): Promise<{ dir: string; helper: VmProcess }> {
  const dir = await mkdtemp(join(tmpdir(), "pith-net-"));
  const helper = await startNetHelper({ owner: "test", machineId: "net-1", socketPath: join(dir, "net.sock"), forwards: [], egress: [], ...spec }, join(dir, "net.log"));
  t.after(async () => {
    helper.kill("SIGKILL");
    await helper.exited;
    await rm(dir, { recursive: true, force: true });
  });
  return { dir, helper };
}

/** Everything the other end sends until it closes. */
function readAll(path: string): Promise<string> {
  return new Promise((resolve, reject) => {
    let text = "";
    connect(path)
      .setEncoding("utf8")
      .on("data", (c: string) => (text += c))
      .on("close", () => resolve(text))
      .on("error", reject);
  });
}

describe("pith-net", { skip, timeout: 120_000 }, () => {
  test("it is ready before QEMU connects, serves one QEMU, and exits 0 when that QEMU goes", async (t) => {
    const { dir, helper } = await start(t, {});
    const qemu = connect(join(dir, "net.sock"));
    await new Promise((resolve) => qemu.once("connect", resolve));
    qemu.end();
    assert.deepEqual(await helper.exited, { status: 0, signal: null });
  });

  test("a frame longer than QEMU ever sends ends the network instead of being buffered", async (t) => {
    const { dir, helper } = await start(t, {});
    const qemu = connect(join(dir, "net.sock"));
    await once(qemu, "connect");
    qemu.write(Buffer.from([0xff, 0xff, 0xff, 0xf0]));
    assert.deepEqual(await helper.exited, { status: 1, signal: null });
    assert.match(await readFile(join(dir, "net.log"), "utf8"), /QEMU sent a 4294967280-byte frame/);
  });

  test("when QEMU goes, the dialer and every egress connection it holds go too: no orphans", async (t) => {
    let serverSide: Promise<unknown> | undefined;
    const server = createServer((socket) => {
      serverSide = once(socket, "close");
      socket.write("hello\n"); // and never closes: only the dialer's end can end this
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    t.after(() => server.close());
    const port = (server.address() as { port: number }).port;
    const { dir, helper } = await start(t, { machineId: "net-orphans", egress: [{ guestAddress: "10.0.2.100", guestPort: port, host: "127.0.0.1", port }] });
    const guest = connect(join(dir, "egress-0.sock"));
    const guestClosed = once(guest, "close");
    await once(guest, "data");
    const qemu = connect(join(dir, "net.sock"));
    await once(qemu, "connect");
    qemu.end();
    assert.deepEqual(await helper.exited, { status: 0, signal: null });
    await Promise.all([serverSide, guestClosed]);
    assert.deepEqual(await processesNamed("test/net-orphans"), []);
  });

  test("a forward whose port is taken fails the start clearly, leaving nothing running", async (t) => {
    const port = await tcpServer(t, []);
    const dir = await mkdtemp(join(tmpdir(), "pith-net-"));
    t.after(() => rm(dir, { recursive: true, force: true }));
    await assert.rejects(
      startNetHelper({ owner: "test", machineId: "net-2", socketPath: join(dir, "net.sock"), forwards: [{ hostPort: port, guestPort: 8080 }], egress: [] }, join(dir, "net.log")),
      (e: Error & { code?: string }) => e.code === "NET_HELPER_FAILED" && e.message.includes(`127.0.0.1:${port}`),
    );
  });

  test("a name is resolved per connection and refused when it leads to loopback; a literal address is dialled as declared", async (t) => {
    const hits: string[] = [];
    const port = await tcpServer(t, hits);
    const { dir } = await start(t, {
      egress: [
        { guestAddress: "10.0.2.100", guestPort: port, host: "localhost", port },
        { guestAddress: "10.0.2.101", guestPort: port, host: "127.0.0.1", port },
      ],
    });
    assert.equal(await readAll(join(dir, "egress-0.sock")), "", "the connection by name is closed at once");
    assert.deepEqual(hits, [], "the loopback server saw nothing");
    assert.match(await readFile(join(dir, "net.log"), "utf8"), new RegExp(`egress localhost:${port}: refused 127\\.0\\.0\\.1 \\(loopback`));
    assert.equal(await readAll(join(dir, "egress-1.sock")), "hello from the host\n");
    assert.deepEqual(hits, ["connection"]);
  });

  test("a guest retrying a refused destination forever logs a bounded number of lines, with a count of the rest", async (t) => {
    const hits: string[] = [];
    const port = await tcpServer(t, hits);
    const { dir } = await start(t, { egress: [{ guestAddress: "10.0.2.100", guestPort: port, host: "localhost", port }] });
    const began = performance.now();
    for (let i = 0; i < 100; i++) assert.equal(await readAll(join(dir, "egress-0.sock")), "", "refused");
    // 20 lines per 10 s window: on a slow host the attempts may reach into more windows.
    const allowed = 20 * (Math.ceil((performance.now() - began) / 10_000) + 1);
    const refusals = ((await readFile(join(dir, "net.log"), "utf8")).match(/refused 127\.0\.0\.1/g) ?? []).length;
    assert.ok(refusals >= 1 && refusals <= Math.min(allowed, 99), `at most ${allowed} of 100 refusals logged, got ${refusals}`);
    assert.deepEqual(hits, [], "the loopback server saw nothing");
  });
});

/** pith-net processes (itself, its dialer, its connections: forks share its argv) for a machine. */
async function processesNamed(machine: string): Promise<number[]> {
  const found: number[] = [];
  for (const pid of (await readdir("/proc")).filter((e) => /^\d+$/.test(e))) {
    const argv = (await readFile(`/proc/${pid}/cmdline`, "utf8").catch(() => "")).split("\0");
    if (argv.includes("--machine") && argv[argv.indexOf("--machine") + 1] === machine) found.push(Number(pid));
  }
  return found;
}
