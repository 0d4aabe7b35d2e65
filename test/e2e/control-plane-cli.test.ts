import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";
import { after, before, describe, test } from "node:test";
import type { FastifyInstance } from "fastify";
import { createApiServer } from "../../src/api/api-server.ts";
import { PithClient } from "../../src/client/pith-client.ts";
import type { Service } from "../../src/model/kinds.ts";
import { pithRoot } from "../../src/shared/paths.ts";
import { SqliteStore } from "../../src/store/sqlite/sqlite-store.ts";
import { freeLoopbackPort } from "../../src/shared/free-port.ts";
import { until } from "../support/until.ts";

/**
 * The resource commands against a real API server and store, run as a person runs them: the
 * `pith` binary in a child process (asynchronously: the server lives in this process).
 */
const PITH = join(pithRoot(), "bin/pith.js");
const TOKEN = "t".repeat(64);

interface Run {
  status: number | null;
  stdout: string;
  stderr: string;
}

function pithAt(server: string, home: string, args: string[], options: { input?: string; token?: string; env?: Record<string, string> } = {}): Promise<Run> {
  return new Promise((resolve, reject) => {
    // The token through the environment: argv would show it to every user of the host.
    const child = spawn(process.execPath, [PITH, "--server", server, ...args], {
      env: { ...process.env, PITH_HOME: home, PITH_TOKEN: options.token ?? TOKEN, ...options.env },
      stdio: ["pipe", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => child.kill("SIGKILL"), 600_000);
    child.on("error", reject);
    child.on("close", (status) => {
      clearTimeout(timer);
      resolve({ status, stdout, stderr });
    });
    child.stdin.end(options.input ?? "");
  });
}


describe("pith apply/get/describe/scale/logs/delete against the API", { timeout: 900_000 }, () => {
  const dir = mkdtempSync(join(tmpdir(), "pith-cli-api-"));
  const home = join(dir, "home");
  const consoleLog = join(dir, "m1.console.log");
  let store: SqliteStore;
  let app: FastifyInstance;
  let url = "";
  let client: PithClient;
  const pith = (args: string[], options?: Parameters<typeof pithAt>[3]) => pithAt(url, home, args, options);
  const file = (name: string, text: string): string => {
    const path = join(dir, name);
    writeFileSync(path, text);
    return path;
  };

  const startServer = async (port = 0): Promise<void> => {
    app = await createApiServer({ store, token: TOKEN, tokens: store.tokens, heartbeatMs: 200, consolePollMs: 20, consoleLogPath: async (name) => (name === "m1" ? consoleLog : undefined) });
    await app.listen({ host: "127.0.0.1", port });
    const address = app.server.address();
    if (address === null || typeof address === "string") throw new Error("no TCP address");
    url = `http://127.0.0.1:${address.port}`;
    client = new PithClient({ server: url, token: TOKEN });
  };

  before(async () => {
    store = SqliteStore.open(join(dir, "store.db"));
    await startServer();
    writeFileSync(consoleLog, "booting\nhello from m1\n");
  });
  after(async () => {
    await app.close();
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const webYaml = (replicas: number) => `# a service and a node
apiVersion: pith.dev/v1
kind: Service
metadata:
  name: web
  labels: { tier: front }
spec:
  image: hello-ts
  replicas: ${replicas}
  hosts: [web.local]
  env: { GREETING: hi }
---
apiVersion: pith.dev/v1
kind: Node
metadata: { name: n1 }
spec: { capacity: { memoryMiB: 4096, vcpus: 4 }, accelerator: tcg }
`;

  test("apply: created, then unchanged, then configured (status kept)", async () => {
    const path = file("web.yaml", webYaml(2));
    const first = await pith(["apply", "-f", path]);
    assert.equal(first.status, 0, first.stderr);
    assert.equal(first.stdout, "service/web created\nnode/n1 created\n");

    const again = await pith(["apply", "-f", path]);
    assert.equal(again.stdout, "service/web unchanged\nnode/n1 unchanged\n");

    const web = (await client.get("Service", "web"))!;
    await client.updateStatus("Service", "web", { observedGeneration: 1, desired: 2, ready: 1, imageDigest: `sha256:${"ab".repeat(32)}` });
    const changed = await pith(["apply", "-f", "-"], { input: webYaml(3) });
    assert.equal(changed.status, 0, changed.stderr);
    assert.equal(changed.stdout, "service/web configured\nnode/n1 unchanged\n");
    const updated = (await client.get("Service", "web"))!;
    assert.equal(updated.spec.replicas, 3);
    assert.equal(updated.metadata.generation, web.metadata.generation + 1);
    assert.equal(updated.status.ready, 1, "apply keeps what the controllers observed");
  });

  test("get: tables, wide, -o json and yaml, one object, not found", async () => {
    await client.updateStatus("Node", "n1", { ready: true, heartbeatAt: new Date().toISOString(), allocated: { memoryMiB: 512, vcpus: 1, machines: 1 } });
    await client.create({
      apiVersion: "pith.dev/v1",
      kind: "Machine",
      metadata: { name: "web-abc12", labels: { "pith.dev/service": "web" } },
      spec: { service: "web", image: `sha256:${"ab".repeat(32)}`, node: "n1", memoryMiB: 128, vcpus: 1, desiredState: "running" },
      status: { phase: "ready", node: "n1", pid: 4242, accelerator: "tcg", timings: { readyMs: 1234 }, addresses: [{ guestPort: 8080, hostPort: 41000, url: "http://127.0.0.1:41000" }] },
    });

    const services = await pith(["get", "svc"]);
    assert.equal(services.status, 0, services.stderr);
    const [header, row] = services.stdout.trimEnd().split("\n");
    assert.match(header!, /^NAME\s+IMAGE\s+READY\s+STATUS\s+AGE$/);
    assert.match(row!, /^web\s+abababababab\s+1\/2\s+Updating\s+\d+s$/);
    assert.match((await pith(["get", "services", "-o", "wide"])).stdout, /HOSTS\s+ENV\n.*web\.local\s+1\n/);

    const machines = await pith(["get", "m", "-o", "wide"]);
    assert.match(machines.stdout, /^NAME\s+SERVICE\s+PHASE\s+NODE\s+READY-IN\s+AGE\s+PID\s+ADDRESS\s+ACCEL\s+FROM\s+REASON\n/);
    assert.match(machines.stdout, /web-abc12\s+web\s+ready\s+n1\s+1\.2s\s+\d+s\s+4242\s+http:\/\/127\.0\.0\.1:41000\s+tcg\s+-\s+-\n/);
    assert.match((await pith(["get", "nodes"])).stdout, /n1\s+Ready\s+loopback\s+tcg\s+1\s+512\/4096 MiB\s+\d+s\n/);

    const json = JSON.parse((await pith(["get", "service", "-o", "json"])).stdout) as { kind: string; items: Service[]; metadata: { resourceVersion: string } };
    assert.equal(json.kind, "ServiceList");
    assert.deepEqual(json.items.map((s) => s.metadata.name), ["web"]);
    assert.match((await pith(["get", "svc/web", "-o", "yaml"])).stdout, /^apiVersion: pith\.dev\/v1\nkind: Service\nmetadata:\n  name: web\n/);
    assert.match((await pith(["get", "svc", "-l", "tier=back"])).stderr, /no services found/);

    const missing = await pith(["get", "svc", "nope"]);
    assert.equal(missing.status, 1);
    assert.match(missing.stderr, /^error: service nope not found\n/);
    const unknownKind = await pith(["get", "pods"]);
    assert.equal(unknownKind.status, 1);
    assert.match(unknownKind.stderr, /unknown kind "pods"\n\s+fix: use one of: service \(services, svc\)/);
  });

  test("describe: fields, the service's machines and its events", async () => {
    await client.create({
      apiVersion: "pith.dev/v1",
      kind: "Event",
      metadata: { name: "web.scaled.1" },
      spec: { involved: { kind: "Service", name: "web" }, type: "Normal", reason: "Scaled", message: "desired 3 machines", at: new Date().toISOString() },
    });
    const r = await pith(["describe", "svc", "web"]);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /^Name:\s+web\nKind:\s+Service\nLabels:\s+tier=front\n/);
    assert.match(r.stdout, /\nSpec:\n  image:\s+hello-ts\n  replicas:\s+3\n  hosts:\s+web\.local\n  env:\n    GREETING:\s+hi\n/);
    assert.match(r.stdout, /\nStatus:\n(  .*\n)*  ready:\s+1\n/);
    assert.match(r.stdout, /\nMachines:\n  NAME\s+SERVICE\s+PHASE.*\n  web-abc12\s+web\s+ready/);
    assert.match(r.stdout, /\nEvents:\n  TYPE\s+REASON\s+AGE\s+MESSAGE\n  Normal\s+Scaled\s+\d+s\s+desired 3 machines\n$/);
    const machine = await pith(["describe", "machine/web-abc12"]);
    assert.match(machine.stdout, /  addresses:\n    - guestPort:\s+8080\n      hostPort:\s+41000\n/);
    assert.match(machine.stdout, /Events:  <none>\n$/);
  });

  test("scale: a count, or a clear error", async () => {
    const ok = await pith(["scale", "web", "5"]);
    assert.equal(ok.status, 0, ok.stderr);
    assert.equal(ok.stdout, "service/web scaled to 5\n");
    assert.equal((await client.get("Service", "web"))!.spec.replicas, 5);
    for (const bad of ["-1", "2.5", "many"]) {
      const r = await pith(["scale", "web", bad]);
      assert.notEqual(r.status, 0, bad);
      assert.match(r.stderr, /replicas must be a whole number, 0 or more/);
    }
    const missing = await pith(["scale", "nope", "1"]);
    assert.equal(missing.status, 1);
    assert.match(missing.stderr, /service nope not found/);
  });

  test("logs: a machine's console", async () => {
    const r = await pith(["logs", "m1"]);
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stdout, "booting\nhello from m1\n");
    const missing = await pith(["logs", "nope"]);
    assert.equal(missing.status, 1);
    assert.match(missing.stderr, /machine nope not found/);
  });

  test("a bad document: named by file, index and line, and nothing is applied", async () => {
    const path = file(
      "bad.yaml",
      "apiVersion: pith.dev/v1\nkind: Service\nmetadata: { name: fine }\nspec: { image: x }\n---\napiVersion: pith.dev/v1\nmetadata: { name: kindless }\nspec: {}\n",
    );
    const r = await pith(["apply", "-f", path]);
    assert.equal(r.status, 1);
    assert.equal(r.stdout, "");
    assert.match(r.stderr, new RegExp(`error: ${path.replace(/[.]/g, "\\.")}: document 2 \\(line 6\\): kind is missing\\n\\s+fix: kind is one of Service`));
    assert.equal(await client.get("Service", "fine"), undefined);
  });

  test("a document the server rejects is reported with its fields; the others are applied", async () => {
    const path = file(
      "mixed.yaml",
      "apiVersion: pith.dev/v1\nkind: Service\nmetadata: { name: broken }\nspec: { image: x, replicas: -1, colour: red }\n---\napiVersion: pith.dev/v1\nkind: Service\nmetadata: { name: api }\nspec: { image: x }\n",
    );
    const r = await pith(["apply", "-f", path]);
    assert.equal(r.status, 1);
    assert.equal(r.stdout, "service/api created\n");
    assert.match(r.stderr, /^error: service\/broken: .*\n(\s+.*\n)*\s+spec\.replicas: /);
    assert.match(r.stderr, /spec(\.colour)?: .*colour/);
  });

  test("delete: by name, by file, and not found", async () => {
    const r = await pith(["delete", "svc", "api"]);
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stdout, "service/api deleted\n");
    const again = await pith(["delete", "service", "api"]);
    assert.equal(again.status, 1);
    assert.match(again.stderr, /^error: service api not found\n/);
    const byFile = await pith(["delete", "-f", join(dir, "web.yaml")]);
    assert.equal(byFile.status, 0, byFile.stderr);
    assert.equal(byFile.stdout, "service/web deleted\nnode/n1 deleted\n");
  });

  test("delete --wait: returns once the service's machines are gone; names those left when time runs out", async () => {
    // This test plays the agent: it deletes a machine's object once its VM would have exited.
    const machineOf = (name: string, service: string) => ({
      apiVersion: "pith.dev/v1" as const,
      kind: "Machine" as const,
      metadata: { name, labels: { "pith.dev/service": service } },
      spec: { service, image: `sha256:${"cd".repeat(32)}`, node: "n9", memoryMiB: 64, vcpus: 1, desiredState: "running" as const },
    });
    for (const service of ["waited", "stuck"]) {
      await client.create({ apiVersion: "pith.dev/v1", kind: "Service", metadata: { name: service }, spec: { image: "x", replicas: 1 } });
    }
    await client.create(machineOf("waited-a", "waited"));
    await client.create(machineOf("waited-b", "waited"));
    await client.create(machineOf("stuck-a", "stuck"));

    const child = spawn(process.execPath, [PITH, "--server", url, "delete", "svc", "waited", "--wait", "--timeout", "30s"], { env: { ...process.env, PITH_HOME: home, PITH_TOKEN: TOKEN } });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    const exit = new Promise<number | null>((resolve) => child.on("close", resolve));
    let exited = false;
    void exit.then(() => (exited = true));
    const output = () => `stdout ${JSON.stringify(stdout)}, stderr ${JSON.stringify(stderr)}`;
    await until("--wait says what it waits for", () => stderr.includes("service waited: waiting for 2 machines to stop: waited-a, waited-b\n"), { timeoutMs: 20_000, context: output });
    await client.delete("Machine", "waited-a");
    await until("--wait sees one go", () => stderr.includes("service waited: waiting for 1 machine to stop: waited-b\n"), { timeoutMs: 20_000, context: output });
    assert.equal(exited, false, "one machine is left: still waiting");
    await client.delete("Machine", "waited-b");
    assert.equal(await exit, 0, output());
    assert.equal(stdout, "service/waited deleted\n");
    assert.match(stderr, /service waited: its machines have stopped\n$/);

    const stuck = await pith(["delete", "svc", "stuck", "--wait", "--timeout", "1s"]);
    assert.equal(stuck.status, 1);
    assert.equal(stuck.stdout, "service/stuck deleted\n");
    assert.match(stuck.stderr, /error: service stuck: stuck-a still there after 1s\n.*agents stop them/s);
    await client.delete("Machine", "stuck-a");

    // From a file: every service is deleted first, then all are waited for under one --timeout.
    for (const service of ["file-a", "file-b"]) {
      await client.create({ apiVersion: "pith.dev/v1", kind: "Service", metadata: { name: service }, spec: { image: "x", replicas: 1 } });
      await client.create(machineOf(`${service}-m`, service));
    }
    const services = file("two.yaml", ["file-a", "file-b"].map((n) => `apiVersion: pith.dev/v1\nkind: Service\nmetadata: { name: ${n} }\nspec: { image: x, replicas: 1 }\n`).join("---\n"));
    const fromFile = await pith(["delete", "-f", services, "--wait", "--timeout", "1s"]);
    assert.equal(fromFile.status, 1, fromFile.stderr);
    assert.equal(fromFile.stdout, "service/file-a deleted\nservice/file-b deleted\n");
    assert.match(fromFile.stderr, /services file-a, file-b: waiting for 2 machines to stop: file-a-m, file-b-m\n/);
    assert.match(fromFile.stderr, /error: services file-a, file-b: file-a-m, file-b-m still there after 1s\n/);
    for (const service of ["file-a", "file-b"]) await client.delete("Machine", `${service}-m`);

    const notAService = await pith(["delete", "node", "n9", "--wait"]);
    assert.equal(notAService.status, 1);
    assert.match(notAService.stderr, /--wait waits for a service's machines to stop, not for a node/);
  });

  test("apply builds a service's spec.app, registers the Image and runs it by digest", async () => {
    const appDir = join(pithRoot(), "examples/static-c");
    const path = file("app.yaml", `apiVersion: pith.dev/v1\nkind: Service\nmetadata: { name: static }\nspec:\n  app: ${relative(dir, appDir)}\n  replicas: 1\n`);
    // The real PITH_HOME: its kernel cache makes the build take seconds, not minutes.
    const realHome = process.env.PITH_HOME ?? join(process.env.HOME ?? "/root", ".pith");
    const r = await pithAt(url, realHome, ["apply", "-f", path]);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /^image\/static-c-[0-9a-f]{12} (created|unchanged)\nservice\/static created\n$/);
    const service = (await client.get("Service", "static"))!;
    assert.match(service.spec.image, /^sha256:[0-9a-f]{64}$/);
    assert.equal((service.spec as { app?: string }).app, undefined);
    const images = await client.list("Image", { labels: { "pith.dev/name": "static-c" } });
    assert.equal(images.items[0]?.spec.digest, service.spec.image);
    assert.deepEqual(images.items[0]?.spec.listen, [8080]);
    const table = await pith(["get", "images"]);
    assert.match(table.stdout, /^NAME\s+DIGEST\s+RUNTIME\s+SIZE\s+LISTEN\nstatic-c\s+[0-9a-f]{12}\s+native\s+[\d.]+ (KiB|MiB)\s+8080\n$/);
    const again = await pithAt(url, realHome, ["apply", "-f", path]);
    assert.match(again.stdout, /^image\/static-c-[0-9a-f]{12} unchanged\nservice\/static unchanged\n$/);
  });

  test("get -w prints a row per change until Ctrl-C", async () => {
    const child = spawn(process.execPath, [PITH, "--server", url, "get", "svc", "-w"], { env: { ...process.env, PITH_HOME: home, PITH_TOKEN: TOKEN } });
    let stdout = "";
    const waitFor = (pattern: RegExp): Promise<true> =>
      until(`${pattern}`, () => pattern.test(stdout) || undefined, { timeoutMs: 20_000, everyMs: 50, context: () => `have ${JSON.stringify(stdout)}` });
    child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
    await waitFor(/^NAME\s+IMAGE/);
    await client.create({ apiVersion: "pith.dev/v1", kind: "Service", metadata: { name: "watched" }, spec: { image: "x", replicas: 0 } });
    await waitFor(/\nwatched\s+x\s+0\/0\s+ScaledToZero\s+\d+s\n/);
    await client.delete("Service", "watched");
    await waitFor(/\nwatched\s+.*\(deleted\)\n/);
    const exited = new Promise<number | null>((resolve) => child.on("close", resolve));
    child.kill("SIGINT");
    assert.equal(await exited, 0);
  });

  test("token create, ls and revoke; a created token works from --token-file; --token is refused", async () => {
    const created = await pith(["token", "create", "--role", "read-only", "--name", "dash"]);
    assert.equal(created.status, 0, created.stderr);
    const secret = created.stdout.trim();
    assert.match(secret, /^pith_[0-9a-f]{16}_[0-9a-f]{64}$/, "stdout is the token alone");
    assert.match(created.stderr, /token dash \(id [0-9a-f]{16}, role read-only\) created; it is shown only this once/);
    const node = await pith(["token", "create", "--role", "node", "--node", "n1"]);
    assert.equal(node.status, 0, node.stderr);
    assert.equal((await pith(["token", "create", "--role", "node"])).status, 1, "a node token needs --node");

    const ls = await pith(["token", "ls"]);
    assert.match(ls.stdout, /^NAME\s+ROLE\s+NODE\s+CREATED\s+ID\n/);
    assert.match(ls.stdout, /\ndash\s+read-only\s+-\s+\S+\s+[0-9a-f]{16}\n/);
    assert.match(ls.stdout, /\nnode-n1-[0-9a-f]{6}\s+node\s+n1\s/);
    assert.ok(!ls.stdout.includes(secret.slice(22)), "no secret in ls");

    const tokenFile = file("dash.token", `${secret}\n`);
    const read = await pith(["--token-file", tokenFile, "get", "svc"], { env: { PITH_TOKEN: "" } });
    assert.equal(read.status, 0, read.stderr);
    const write = await pith(["--token-file", tokenFile, "scale", "web", "2"], { env: { PITH_TOKEN: "" } });
    assert.equal(write.status, 1);
    assert.match(write.stderr, /a read-only token \("dash"\) may not POST \/api\/v1\/services\/:name\/scale/);

    const argv = await pith(["--token", TOKEN, "get", "svc"]);
    assert.equal(argv.status, 1);
    assert.match(argv.stderr, /^error: --token is not accepted.*\n\s+fix: pass it with --token-file FILE, the PITH_TOKEN environment variable/);

    const revoked = await pith(["token", "revoke", "dash"]);
    assert.match(revoked.stdout, /^token dash \(id [0-9a-f]{16}\) revoked\n$/);
    const after = await pith(["--token-file", tokenFile, "get", "svc"], { env: { PITH_TOKEN: "" } });
    assert.equal(after.status, 1);
    assert.match(after.stderr, /not valid \(or was revoked\)/);
    assert.equal((await pith(["token", "revoke", "dash"])).status, 1);
  });

  test("wrong token and no server: what is wrong and how to fix it", async () => {
    const refused = await pith(["get", "svc"], { token: "wrong" });
    assert.equal(refused.status, 1);
    assert.match(refused.stderr, /^error: the API token is not valid.*\n\s+fix: .*--token-file FILE, set PITH_TOKEN/);

    assert.deepEqual(await new PithClient({ server: url, token: "wrong" }).healthz(), { ok: true }, "healthz needs no token");
    const port = await freeLoopbackPort();
    const down = await pithAt(`http://127.0.0.1:${port}`, home, ["get", "svc"]);
    assert.equal(down.status, 1);
    assert.equal(down.stderr, `error: cannot reach the Pith control plane at http://127.0.0.1:${port}: connection refused\n  fix: start it with \`pith up\`, or set --server / PITH_SERVER\n`);
  });

  test("a watch resumes across cut connections and a server restart, missing and repeating nothing", async () => {
    const start = (await client.list("Service")).metadata.resourceVersion;
    const seen: string[] = [];
    const disconnects: string[] = [];
    const controller = new AbortController();
    const waitFor = async (count: number) => {
      const deadline = Date.now() + 20_000;
      while (seen.length < count) {
        if (Date.now() > deadline) throw new Error(`timed out at ${JSON.stringify(seen)}`);
        await new Promise((r) => setTimeout(r, 20));
      }
    };
    const watching = client.watch(
      "Service",
      { resourceVersion: start, signal: controller.signal, backoff: { initialMs: 50, maxMs: 200 }, onDisconnect: (e) => disconnects.push(e.message) },
      (event) => void seen.push(`${event.type} ${event.object.metadata.name}`),
    );
    const svc = (name: string) => ({ apiVersion: "pith.dev/v1" as const, kind: "Service" as const, metadata: { name }, spec: { image: "x", replicas: 1 } });

    try {
      await client.create(svc("w1"));
      await waitFor(1);
      // Cut every connection server-side; write while the watcher is away.
      app.server.closeAllConnections();
      await client.create(svc("w2"));
      await client.scale("w1", 2);
      await waitFor(3);

      // Restart the server on the same port and store; write while it is down.
      const port = Number(new URL(url).port);
      await app.close();
      await store.create(svc("w3"));
      await store.delete("Service", "w2");
      await startServer(port);
      await client.create(svc("w4"));
      await waitFor(6);
      await new Promise((r) => setTimeout(r, 500)); // a few bookmarks: nothing more may arrive
    } finally {
      controller.abort();
      await watching;
    }

    assert.deepEqual(seen, ["ADDED w1", "ADDED w2", "MODIFIED w1", "ADDED w3", "DELETED w2", "ADDED w4"]);
    assert.ok(disconnects.length >= 2, `disconnects: ${JSON.stringify(disconnects)}`);
  });
});
