/**
 * The escape drill's host side (test/e2e/escape-drill.test.ts), run by the test inside the
 * network namespace it made for Pith, so that whatever the drill reaches is the test's own. It
 * runs `pith up`, starts a bystander machine and the drill machine, plays its part in the
 * drill (re-points the declared name at 127.0.0.1 when asked), watches the flood, and prints
 * everything as JSON lines for the test to judge: it asserts nothing itself.
 *
 * Env: PITH_HOME, DRILL_IMAGE and BYSTANDER_IMAGE (digests), DRILL_NODE, DRILL_HOSTS_FILE and
 * DRILL_REPOINTED (the hosts file bind-mounted as this namespace's /etc/hosts, and what to write
 * into it), DRILL_FLOOD_MS (how long to watch the flood at most).
 */
import { spawn } from "node:child_process";
import { createSocket } from "node:dgram";
import { readFile, stat, writeFile } from "node:fs/promises";
import { connect, createServer } from "node:net";
import { join } from "node:path";
import { PithClient } from "../../src/client/index.ts";
import type { Machine } from "../../src/model/kinds.ts";
import { API_VERSION } from "../../src/model/resource.ts";
import { pithRoot } from "../../src/shared/paths.ts";
import { GiveUp, until } from "./until.ts";

const API_PORT = 7070;
const PROXY_PORT = 8080;
/** Ports on this namespace's loopback that a probe through the gateway would land on. */
const LOOPBACK_TCP = [22, 53, 80, 443, 9000, 9001];
const LOOPBACK_UDP = [53, 9000];

const env = (name: string): string => {
  const value = process.env[name];
  if (!value) throw new Error(`drill-host: ${name} is not set`);
  return value;
};
const say = (event: Record<string, unknown>): void => void process.stdout.write(JSON.stringify(event) + "\n");
const home = env("PITH_HOME");
const floodMs = Number(process.env.DRILL_FLOOD_MS ?? 60_000);

/**
 * How the drill's waits poll. A look that throws is tried again: pith up is still starting, or
 * a request fails. The drill's timeline is bounded by the test's timeout too.
 */
const POLL = { everyMs: 200, retryErrors: true };

function loopbackListeners(): Promise<void>[] {
  const tcp = LOOPBACK_TCP.map((port) => new Promise<void>((resolve) => {
    createServer((socket) => {
      say({ event: "loopback-hit", proto: "tcp", port, remote: `${socket.remoteAddress}:${socket.remotePort}` });
      socket.on("error", () => {});
      socket.end("loopback\n");
    }).listen(port, "127.0.0.1", resolve);
  }));
  const udp = LOOPBACK_UDP.map((port) => new Promise<void>((resolve) => {
    const socket = createSocket("udp4");
    socket.on("message", (message, remote) => {
      say({ event: "loopback-hit", proto: "udp", port, remote: `${remote.address}:${remote.port}`, bytes: message.length });
      socket.send("loopback\n", remote.port, remote.address);
    });
    socket.bind(port, "127.0.0.1", resolve);
  }));
  return [...tcp, ...udp];
}

const rssKb = async (pid: number): Promise<number | undefined> => {
  const status = await readFile(`/proc/${pid}/status`, "utf8").catch(() => "");
  const match = /^VmRSS:\s+(\d+) kB$/m.exec(status);
  return match ? Number(match[1]) : undefined;
};

async function machineOf(client: PithClient, service: string): Promise<Machine | undefined> {
  const { items } = await client.list("Machine");
  return items.find((m) => m.spec.service === service);
}

/** Says "go" on the drill's forwarded port, once the name points at 127.0.0.1. */
function sayGo(port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, "127.0.0.1", () => socket.write("go\n"));
    let answer = "";
    socket.setEncoding("utf8").on("data", (c: string) => (answer += c));
    socket.on("end", () => resolve(answer.trim()));
    socket.on("error", reject);
    socket.setTimeout(20_000, () => socket.destroy(new Error("no answer to go")));
  });
}

/**
 * Follows the drill's console through the API (wherever the host keeps it) for its DRILL lines,
 * until `onLine` says stop. Only a short unfinished line is kept between chunks: after the
 * probes the console is flooded, and this process must stay small too.
 */
async function followProbes(client: PithClient, machine: string, onLine: (line: string) => Promise<boolean>): Promise<void> {
  const abort = new AbortController();
  let pending = "";
  try {
    for await (const chunk of client.console(machine, { follow: true, signal: abort.signal })) {
      const lines = (pending + chunk).split("\n");
      pending = lines.pop()!.slice(-4096);
      for (const line of lines) {
        const text = line.replace(/\r$/, "");
        if (text.startsWith("DRILL") && !(await onLine(text))) return;
      }
    }
    throw new Error("drill-host: the drill's console ended before DRILL-DONE");
  } finally {
    abort.abort();
  }
}

async function main(): Promise<void> {
  await Promise.all(loopbackListeners());
  say({ event: "loopback-listening", tcp: LOOPBACK_TCP, udp: LOOPBACK_UDP });

  const pith = spawn(process.execPath, [join(pithRoot(), "bin/pith.js"), "up", "--port", String(API_PORT), "--proxy-port", String(PROXY_PORT), "--node", env("DRILL_NODE")], {
    env: { ...process.env, PITH_HOME: home },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let pithExit: string | undefined;
  pith.on("exit", (code, signal) => {
    pithExit = `code ${code} signal ${signal}`;
    say({ event: "pith-exited", code, signal });
  });
  for (const stream of [pith.stdout!, pith.stderr!]) {
    stream.setEncoding("utf8").on("data", (chunk: string) => say({ event: "pith-log", text: chunk.slice(0, 2000) }));
  }
  say({ event: "pith-started", pid: pith.pid });

  const client = await until("pith up answers", async () => {
    const token = (await readFile(join(home, "token"), "utf8")).trim();
    const c = new PithClient({ server: `http://127.0.0.1:${API_PORT}`, token });
    await c.list("Service");
    return c;
  }, { ...POLL, timeoutMs: 60_000 });
  const cleanups: (() => void)[] = [];
  const cleanup = async (): Promise<void> => {
    for (const c of cleanups) c();
    const { items } = await client.list("Machine").catch(() => ({ items: [] as Machine[] }));
    for (const service of ["drill", "bystander"]) await client.delete("Service", service).catch(() => {});
    for (const m of items) if (m.status?.pid) try { process.kill(m.status.pid, "SIGKILL"); } catch { /* gone already */ }
    pith.kill("SIGTERM");
  };

  try {
    await client.create({ apiVersion: API_VERSION, kind: "Service", metadata: { name: "bystander" }, spec: { image: env("BYSTANDER_IMAGE"), replicas: 1 } });
    const bystander = await until("the bystander is ready", async () => {
      const m = await machineOf(client, "bystander");
      return m?.status?.phase === "ready" ? m : undefined;
    }, { ...POLL, timeoutMs: 120_000 });
    const otherPort = bystander.status!.addresses![0]!.hostPort;
    say({ event: "bystander-ready", name: bystander.metadata.name, hostPort: otherPort });

    await client.create({
      apiVersion: API_VERSION,
      kind: "Service",
      metadata: { name: "drill" },
      spec: { image: env("DRILL_IMAGE"), replicas: 1, env: { API_PORT: String(API_PORT), PROXY_PORT: String(PROXY_PORT), OTHER_PORT: String(otherPort) } },
    });
    const drill = await until("the drill is ready", async () => {
      const m = await machineOf(client, "drill");
      if (m?.status?.phase === "failed") throw new GiveUp(`drill-host: the drill failed before the probes: ${m.status.reason}`);
      return m?.status?.phase === "ready" ? m : undefined;
    }, { ...POLL, timeoutMs: 120_000 });
    const drillPort = drill.status!.addresses!.find((a) => a.guestPort === 8080)!.hostPort;
    say({ event: "drill-ready", name: drill.metadata.name, hostPort: drillPort, pid: drill.status?.pid });

    // Every status the drill's machine goes through: a failed machine may be replaced and
    // deleted between two looks, and its failure must not be missed.
    let ended: { phase: string; reason: string; at: number } | undefined;
    const watching = new AbortController();
    void client.watch("Machine", { signal: watching.signal }, ({ type, object }) => {
      if (object.metadata.name !== drill.metadata.name || ended) return;
      const phase = type === "DELETED" ? `deleted while ${object.status?.phase}` : object.status?.phase ?? "";
      if (type === "DELETED" || phase === "failed" || phase === "stopped") ended = { phase, reason: object.status?.reason ?? "", at: Date.now() };
    }).catch((error: unknown) => say({ event: "watch-error", message: String(error) }));
    cleanups.push(() => watching.abort());

    await followProbes(client, drill.metadata.name, async (line) => {
      if (line.startsWith("DRILL {")) say({ event: "probe", result: JSON.parse(line.slice("DRILL ".length)) as unknown });
      else say({ event: "drill-line", line: line.slice(0, 500) });
      if (line === "DRILL-REPOINT waiting") {
        // In place, not by rename: the bind mount over /etc/hosts follows the file, not the name.
        await writeFile(env("DRILL_HOSTS_FILE"), env("DRILL_REPOINTED"));
        say({ event: "repointed", answer: await sayGo(drillPort) });
      }
      return !line.startsWith("DRILL-DONE") && !line.startsWith("DRILL-ERROR");
    });

    const before = await rssKb(pith.pid!);
    say({ event: "flood-started", rssKb: before });
    const started = Date.now();
    let maxRss = before ?? 0;
    // Sampled, not awaited on a condition: the RSS bound must hold at every moment of the flood.
    while (Date.now() - started < floodMs && pithExit === undefined) {
      const rss = await rssKb(pith.pid!);
      if (rss !== undefined) maxRss = Math.max(maxRss, rss);
      // A little longer after the failure: the host must stay up once the machine is gone too.
      if (ended && Date.now() - ended.at > 3000) break;
      await new Promise((r) => setTimeout(r, 250));
    }
    const last = await client.get("Machine", drill.metadata.name).catch(() => undefined);
    const other = await client.get("Machine", bystander.metadata.name).catch(() => undefined);
    // Where `pith run` and today's agent keep it; -1 if the host keeps it elsewhere.
    const consoleBytes = await stat(join(home, "machines", drill.metadata.name, "console.log")).then((s) => s.size, () => -1);
    const events = await client.events("Machine", drill.metadata.name).catch(() => []);
    say({
      event: "report",
      pithAlive: pithExit === undefined && pith.exitCode === null,
      rssBeforeKb: before,
      rssMaxKb: maxRss,
      floodMs: Date.now() - started,
      drill: ended
        ? { name: drill.metadata.name, phase: ended.phase, reason: ended.reason, failedAfterMs: ended.at - started }
        : { name: drill.metadata.name, phase: last?.status?.phase ?? "gone", reason: last?.status?.reason ?? "" },
      drillEvents: events.map((e) => `${e.spec.reason}: ${e.spec.message}`.slice(0, 300)),
      bystander: { name: bystander.metadata.name, phase: other?.status?.phase ?? "gone" },
      consoleBytes,
    });
  } finally {
    await cleanup();
  }
}

main().then(
  () => process.exit(0),
  (error: unknown) => {
    say({ event: "error", message: String((error as Error).stack ?? error) });
    process.exit(1);
  },
);
