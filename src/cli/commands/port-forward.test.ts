import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { connect, createServer, type AddressInfo, type Server, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { startTestServer, type TestServer } from "../../api/test-support.ts";
import { pithRoot } from "../../shared/paths.ts";
import { startEcho } from "../../../test/support/echo-server.ts";
import { until } from "../../../test/support/until.ts";
import { parsePortPair } from "./port-forward.ts";

const PITH = join(pithRoot(), "bin/pith.js");

test("port pairs: GUEST, LOCAL:GUEST, :GUEST (any free local port), and nothing else", () => {
  assert.deepEqual(parsePortPair("8080"), { local: 8080, guest: 8080 });
  assert.deepEqual(parsePortPair("9000:8080"), { local: 9000, guest: 8080 });
  assert.deepEqual(parsePortPair(":8080"), { local: 0, guest: 8080 });
  for (const bad of ["", "x", "0", "65536", "8080:", "1:2:3", "-1", "08080", "80 80"]) assert.throws(() => parsePortPair(bad), /is not a port to forward/, bad);
});

/** A client of the forwarded local port: what it received, and a wait for some text. */
function dialLocal(port: number): { socket: Socket; received: () => string; closed: Promise<void> } {
  const socket = connect(port, "127.0.0.1");
  let received = "";
  socket.on("data", (chunk: Buffer) => (received += chunk.toString()));
  socket.on("error", () => undefined);
  return { socket, received: () => received, closed: new Promise((resolve) => socket.once("close", () => resolve())) };
}

/** A forward that answers only once the client has sent everything (its FIN), then closes. */
async function answersAfterEnd(): Promise<Server> {
  const server = createServer({ allowHalfOpen: true }, (socket) => {
    let bytes = 0;
    socket.on("data", (chunk: Buffer) => (bytes += chunk.length));
    socket.on("end", () => socket.end(`got ${bytes} bytes\n`));
    socket.on("error", () => undefined);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return server;
}

describe("pith port-forward", () => {
  let api: TestServer;
  let echo: Awaited<ReturnType<typeof startEcho>>;
  let afterEnd: Server;
  let home: string;
  const children: ChildProcess[] = [];

  before(async () => {
    api = await startTestServer();
    echo = await startEcho();
    afterEnd = await answersAfterEnd();
    home = await mkdtemp(join(tmpdir(), "pith-pf-"));
    const image = { apiVersion: "pith.dev/v1", kind: "Image", metadata: { name: "img-abc" }, spec: { digest: "sha256:abc", runtime: "native", memoryMiB: 64, vcpus: 1, listen: [8080], egress: [], storedBytes: 1 } };
    assert.equal((await api.call("POST", "/api/v1/images", image)).status, 201);
    const afterEndPort = (afterEnd.address() as AddressInfo).port;
    // m1 forwards its declared 8080 to the echo server; m2's status forwards 2222, which its image
    // never declared; m3's forward answers after the client's FIN; m4 is still booting.
    for (const [name, guestPort, hostPort] of [["m1", 8080, echo.port], ["m2", 2222, echo.port], ["m3", 8080, afterEndPort]] as const) {
      const machine = { apiVersion: "pith.dev/v1", kind: "Machine", metadata: { name }, spec: { image: "sha256:abc", memoryMiB: 64, vcpus: 1, desiredState: "running" } };
      assert.equal((await api.call("POST", "/api/v1/machines", machine)).status, 201);
      const status = { phase: "ready", addresses: [{ guestPort, hostPort, url: `http://127.0.0.1:${hostPort}/` }] };
      assert.equal((await api.call("PUT", `/api/v1/machines/${name}/status`, { status })).status, 200);
    }
    const booting = { apiVersion: "pith.dev/v1", kind: "Machine", metadata: { name: "m4" }, spec: { image: "sha256:abc", memoryMiB: 64, vcpus: 1, desiredState: "running" } };
    assert.equal((await api.call("POST", "/api/v1/machines", booting)).status, 201);
    assert.equal((await api.call("PUT", "/api/v1/machines/m4/status", { status: { phase: "booting" } })).status, 200);
  });

  after(async () => {
    for (const child of children) child.kill("SIGKILL");
    await echo.close();
    afterEnd.close();
    await api.close();
    await rm(home, { recursive: true, force: true });
  });

  function start(args: string[]): { child: ChildProcess; stdout: () => string; stderr: () => string; exit: Promise<number | null> } {
    const child = spawn(process.execPath, [PITH, "--server", api.url, ...args], { env: { ...process.env, PITH_HOME: home, PITH_TOKEN: api.token } });
    children.push(child);
    let stdout = "";
    let stderr = "";
    child.stdout!.on("data", (d: Buffer) => (stdout += d.toString()));
    child.stderr!.on("data", (d: Buffer) => (stderr += d.toString()));
    const exit = new Promise<number | null>((resolve) => child.once("close", resolve));
    return { child, stdout: () => stdout, stderr: () => stderr, exit };
  }

  /** Starts a port-forward and waits for its forwarding line: the run, its output for messages, the line and the local port. */
  async function forwarding(args: string[]) {
    const run = start(["port-forward", ...args]);
    const output = () => `stdout ${JSON.stringify(run.stdout())}, stderr ${JSON.stringify(run.stderr())}`;
    const line = await until("the forwarding line", () => /Forwarding from 127\.0\.0\.1:(\d+) .*\n/.exec(run.stdout()) ?? undefined, { timeoutMs: 30_000, context: output });
    return { run, output, line: line[0], port: Number(line[1]) };
  }

  test("every local connection is a tunnel to the machine's port, both ways; Ctrl-C stops it", async () => {
    const { run, output, line, port: local } = await forwarding(["machine/m1", ":8080"]);
    assert.match(line, / -> machine\/m1:8080 /);
    const a = dialLocal(local);
    const b = dialLocal(local);
    a.socket.write("one\n");
    b.socket.write("two\n");
    await until("both connections echo", () => a.received() === "echo: one\n" && b.received() === "echo: two\n", { timeoutMs: 10_000, context: () => `${JSON.stringify([a.received(), b.received()])}; ${output()}` });
    a.socket.destroy();
    b.socket.destroy();
    run.child.kill("SIGINT");
    assert.equal(await run.exit, 0, output());
  });

  test("a client that has sent everything (FIN) still gets the machine's answer, then the close", async () => {
    const { run, output, port } = await forwarding(["m3", ":8080"]);
    const client = dialLocal(port);
    client.socket.end("four");
    await client.closed;
    assert.equal(client.received(), "got 4 bytes\n", output());
    run.child.kill("SIGINT");
    assert.equal(await run.exit, 0, output());
  });

  test("a connection the API refuses is closed, and the refusal is said on stderr", async () => {
    const { run, output, port } = await forwarding(["m2", ":2222"]);
    const client = dialLocal(port);
    client.socket.write("hello\n");
    await client.closed;
    assert.equal(client.received(), "");
    await until("the refusal on stderr", () => /connection 1: .*403.*does not declare port 2222/.test(run.stderr()), { timeoutMs: 10_000, context: output });
    run.child.kill("SIGINT");
    assert.equal(await run.exit, 0, output());
  });

  test("an unknown machine, or a port it does not forward: exit 1 at once, saying which", async () => {
    const unknown = start(["port-forward", "nope", "8080"]);
    assert.equal(await unknown.exit, 1);
    assert.match(unknown.stderr(), /machine nope not found/);
    const notForwarded = start(["port-forward", "m1", "9999:9090"]);
    assert.equal(await notForwarded.exit, 1);
    assert.match(notForwarded.stderr(), /machine m1 forwards no guest port 9090 \(it forwards: 8080\)/);
    const booting = start(["port-forward", "m4", "8080"]);
    assert.equal(await booting.exit, 1);
    assert.match(booting.stderr(), /machine m4 is booting: it forwards no port yet/);
    // The local port taken (by the echo server): said so, not a stack trace.
    const taken = start(["port-forward", "m1", `${echo.port}:8080`]);
    assert.equal(await taken.exit, 1);
    assert.match(taken.stderr(), new RegExp(`cannot listen on 127\\.0\\.0\\.1:${echo.port}: the port is in use`));
  });
});
