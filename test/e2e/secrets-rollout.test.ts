import assert from "node:assert/strict";
import { execFile, execFileSync } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, test } from "node:test";
import type { PithClient } from "../../src/client/index.ts";
import type { InputOf } from "../../src/client/types.ts";
import type { Machine, Secret, Service } from "../../src/model/kinds.ts";
import { API_VERSION, KINDS } from "../../src/model/resource.ts";
import { rolloutProgress } from "../../src/model/rollout-progress.ts";
import { pithRoot } from "../../src/shared/paths.ts";
import { TestCluster, waitFor } from "../support/cluster.ts";
import { appImage } from "../support/images.ts";
import { get, runLoad } from "../support/load.ts";
import { missingForMachines } from "../support/machines.ts";

const skip = missingForMachines();
const PITH = join(pithRoot(), "bin/pith.js");

/** Values that appear nowhere unless something leaks them (static-c answers with GREETING). */
const FIRST = `s3cret-first-${process.pid}-a71c`;
const SECOND = `s3cret-second-${process.pid}-c02e`;
const PLAIN = "plain greeting v3";

const machinesOf = async (client: PithClient): Promise<Machine[]> => (await client.list("Machine", { labels: { "pith.dev/service": "web" } })).items;

async function putSecret(client: PithClient, value: string): Promise<void> {
  const input: InputOf<"Secret"> = { apiVersion: API_VERSION, kind: "Secret", metadata: { name: "greet" }, spec: { stringData: { text: value } }, status: {} };
  if (await client.get("Secret", "greet")) await client.update(input);
  else await client.create(input);
}

/**
 * The CLI as a child, awaited without blocking this process: the load runs in this process too,
 * and an event loop stalled by spawnSync would let the proxy close idle keep-alive connections
 * under requests this process has not sent yet.
 */
function pith(args: string[], env: NodeJS.ProcessEnv, timeoutMs: number): Promise<{ status: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [PITH, ...args], { env, encoding: "utf8", timeout: timeoutMs }, (error, stdout, stderr) => {
      resolve({ status: error ? (typeof error.code === "number" ? error.code : 1) : 0, stdout, stderr });
    });
  });
}

/** Waits until the service's rollout of a template other than `previous` is done; returns its hash. */
async function rolledOut(c: TestCluster, client: PithClient, previous: string | undefined): Promise<string> {
  return waitFor(
    async () => {
      const service = (await client.get("Service", "web"))!;
      const progress = rolloutProgress(service, await machinesOf(client));
      return progress.done && service.status.templateHash !== previous ? service.status.templateHash : undefined;
    },
    180_000,
    "the rollout is done",
    () => c.log(),
  );
}

/** Everything the test can find that a value must not be in: API answers, files, process argv. */
async function leaksOf(c: TestCluster, client: PithClient, value: string): Promise<string[]> {
  const found: string[] = [];
  const check = (where: string, text: string | Buffer) => {
    if (text.includes(value)) found.push(where);
  };
  const token = readFileSync(join(c.home, "token"), "utf8").trim();
  const api = async (path: string) => check(`GET ${path}`, await (await fetch(`${c.url}${path}`, { headers: { authorization: `Bearer ${token}` } })).text());
  for (const kind of KINDS) {
    const plural = `${kind.toLowerCase()}s`;
    await api(`/api/v1/${plural}`);
    for (const item of (await client.list(kind)).items) await api(`/api/v1/${plural}/${item.metadata.name}`);
  }
  for (const m of await machinesOf(client)) await api(`/api/v1/machines/${m.metadata.name}/console`);
  for (const file of readdirSync(c.home).filter((f) => f.startsWith("state.db"))) check(file, readFileSync(join(c.home, file)));
  for (const dir of readdirSync(join(c.home, "machines"), { withFileTypes: true }).filter((d) => d.isDirectory())) {
    for (const log of ["console.log", "console.log.1", "net.log"]) {
      try {
        check(`machines/${dir.name}/${log}`, readFileSync(join(c.home, "machines", dir.name, log)));
      } catch {}
    }
  }
  for (const pid of c.qemuPids("node-a")) check(`argv of QEMU ${pid}`, readFileSync(`/proc/${pid}/cmdline`));
  check("the control plane's, agent's and proxy's output", c.log());
  return found;
}

describe("Secrets and rollouts on real machines", { skip, timeout: 900_000 }, () => {
  test("a Secret reaches the app's env and nowhere else; a changed Secret, an env change and an undo each roll 2 machines under load with no failed request", async (t) => {
    execFileSync("make", ["-s", "-C", join(pithRoot(), "examples/static-c")]);
    const image = await appImage("examples/static-c");
    const { cluster: c, client } = await TestCluster.start(t, { proxy: true });

    await putSecret(client, FIRST);
    await client.create({
      apiVersion: API_VERSION,
      kind: "Service",
      metadata: { name: "web" },
      spec: { image: image.record.digest, replicas: 2, hosts: ["web.test"], env: { GREETING: { secretRef: { name: "greet", key: "text" } } }, update: { strategy: "rolling", maxSurge: 1, maxUnavailable: 0 } },
    });
    const first = await rolledOut(c, client, undefined);
    const answer = await get(c.proxyUrl, "web.test");
    assert.equal(answer.status, 200);
    assert.match(answer.body, new RegExp(`^${FIRST} \\(request`), "the app got the Secret's value as GREETING");
    assert.deepEqual(await leaksOf(c, client, FIRST), [], "the value is in no API answer, store file, console, log or argv");
    const reads = (await client.list("Event")).items.filter((e) => e.spec.reason === "SecretsRead");
    assert.equal(reads.length, 2, "each machine's start read the Secret once, through the audited path");
    assert.ok(reads.every((e) => /node node-a-\w+ .* read GREETING \(greet\/text\)/.test(e.spec.message)), reads.map((e) => e.spec.message).join("\n"));

    let stop = false;
    const load = runLoad({ url: c.proxyUrl, host: "web.test", concurrency: 4, durationMs: 600_000, until: () => stop });
    try {
      await putSecret(client, SECOND);
      const second = await rolledOut(c, client, first);
      await waitFor(async () => ((await get(c.proxyUrl, "web.test")).body.startsWith(SECOND) ? true : undefined), 10_000, "the new value is served");

      const service = (await client.get("Service", "web"))!;
      await client.update({ apiVersion: API_VERSION, kind: "Service", metadata: { name: "web", resourceVersion: service.metadata.resourceVersion }, spec: { ...service.spec, env: { GREETING: PLAIN } } });
      const third = await rolledOut(c, client, second);

      const env = { ...process.env, PITH_HOME: c.home, PITH_SERVER: c.url, PITH_TOKEN: readFileSync(join(c.home, "token"), "utf8").trim() };
      const undo = await pith(["rollout", "undo", "web"], env, 60_000);
      assert.equal(undo.status, 0, undo.stderr);
      assert.equal(undo.stdout, "service/web rolled back to the template of revision 2\n");
      const status = await pith(["rollout", "status", "web", "--timeout", "180"], env, 200_000);
      assert.equal(status.status, 0, `${status.stdout}${status.stderr}`);
      assert.match(status.stdout, /service\/web rolled out \(revision 4\): 2 of 2 machines ready\n$/);
      assert.equal((await client.get("Service", "web"))!.status.templateHash, second, "undo returned to the Secret-backed template");
      await waitFor(async () => ((await get(c.proxyUrl, "web.test")).body.startsWith(SECOND) ? true : undefined), 10_000, "the Secret's value is served again");

      const history = await pith(["rollout", "history", "web"], env, 60_000);
      assert.equal(history.status, 0, history.stderr);
      const rows = history.stdout.trim().split("\n").slice(1).map((line) => line.split(/\s{3,}/)[0]);
      assert.deepEqual(rows, ["4 (current)", "3", "1"], history.stdout);
      assert.ok(!history.stdout.includes(PLAIN) && !history.stdout.includes(SECOND), "history names env keys, not values");
      assert.notEqual(third, second);
    } finally {
      stop = true;
    }
    const result = await load;
    const timeline = async () => {
      const events = (await client.list("Event")).items.map((e) => ({ at: Date.parse(e.spec.at), line: `${e.spec.reason} ${e.spec.involved.name}: ${e.spec.message}` }));
      const failures = result.failures.map((f) => ({ at: f.at ?? 0, line: `FAILED ${f.error ?? `${f.status} ${f.body}`}` }));
      return [...events, ...failures].sort((a, b) => a.at - b.at).map((e) => `${new Date(e.at).toISOString()} ${e.line}`).join("\n");
    };
    assert.deepEqual(result.failures, [], `no non-2xx answer and no connection error through three rollouts:\n${await timeline()}\n${c.log()}`);
    for (const greeting of [FIRST, SECOND, PLAIN]) assert.ok((result.bodies.get(greeting) ?? 0) > 0, `${greeting} was served under load`);
    assert.ok(result.ok > 100, `load was continuous (${result.ok} requests)`);
    assert.deepEqual(await leaksOf(c, client, SECOND), [], "the second value leaked nowhere either");
    const secret = (await client.get("Secret", "greet")) as Secret;
    assert.deepEqual(Object.keys(secret.spec), ["keys"]);
    assert.equal(((await client.get("Service", "web")) as Service).status.revisions?.length, 3);
  });
});
