import assert from "node:assert/strict";
import { execFileSync, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdirSync, mkdtempSync, rmSync, symlinkSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { describe, test } from "node:test";
import { buildImage } from "../../src/image/image-builder.ts";
import { loadAppManifest } from "../../src/manifest/app-manifest.ts";
import { pithHome, pithRoot } from "../../src/shared/paths.ts";
import { appImage } from "../support/images.ts";
import { missingForMachines } from "../support/machines.ts";
import { createNamespacePair, missingForNamespaces, type NamespacePair } from "../support/netns.ts";

/**
 * The escape drill (issue 10): a hostile machine tries at least 20 reaches its image did not
 * declare, then floods its console and its control channel. Every reach must fail, the host
 * process must stay up with bounded memory, and the flooding machine alone is failed, with a
 * reason.
 *
 * Safe even if isolation fails: Pith runs in a network namespace of the test's own whose only
 * route leads to a second namespace of the test's, holding the "outside" addresses (TEST-NET
 * ranges, 2001:db8::1) with listeners on them. A probe that gets through reaches the test's
 * listeners and nothing real; the listeners, the loopback listeners beside Pith and the outside
 * namespace's packet counters are all asserted to have seen nothing but the one declared
 * destination.
 */
const DECLARED_NAME = "drill-target.test";
const DECLARED_PORT = 9000;
const TARGET = "203.0.113.1";
const MIN_PROBES = 20;
/** The flood is watched this long for the machine to be failed. */
const FLOOD_WATCH_MS = 60_000;
/** Pith's RSS during the flood: under this, and at most this much above where it was before. */
const RSS_LIMIT_KB = 512 * 1024;
const RSS_GROWTH_LIMIT_KB = 128 * 1024;

const skip = missingForMachines() ?? missingForNamespaces();

interface ProbeResult {
  probe: string;
  target: string;
  proto: string;
  reached: boolean;
  connected: boolean;
  bytes: number;
  error: string;
  note: string;
}

interface Report {
  pithAlive: boolean;
  rssBeforeKb: number;
  rssMaxKb: number;
  floodMs: number;
  drill: { name: string; phase: string; reason: string; failedAfterMs?: number };
  drillEvents: string[];
  bystander: { name: string; phase: string };
  consoleBytes: number;
}

type DrillEvent = { event: string } & Record<string, unknown>;

/** Collects a child's JSON lines; `ready` resolves on the first event named `readyEvent`. */
function collect(child: ChildProcess, log: string[], readyEvent?: string): { events: DrillEvent[]; ready: Promise<void>; exited: Promise<number | null> } {
  const events: DrillEvent[] = [];
  let markReady: () => void = () => {};
  const ready = new Promise<void>((resolve) => (markReady = resolve));
  createInterface({ input: child.stdout! }).on("line", (line) => {
    log.push(line.slice(0, 1000));
    try {
      const event = JSON.parse(line) as DrillEvent;
      events.push(event);
      if (event.event === readyEvent) markReady();
    } catch {
      // not ours: kept in the log only
    }
  });
  createInterface({ input: child.stderr! }).on("line", (line) => log.push(`stderr: ${line.slice(0, 1000)}`));
  const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
  return { events, ready, exited };
}

function within<T>(promise: Promise<T>, ms: number, what: string, log: string[]): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}\n${log.slice(-60).join("\n")}`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

const delta = (after: Record<string, number>, before: Record<string, number>, name: string): number => (after[name] ?? 0) - (before[name] ?? 0);

describe("escape drill: a hostile machine reaches nothing undeclared, and its flood fails it alone", { skip, timeout: 900_000 }, () => {
  test("probes, flood and the host's answers", async (t) => {
    const id = randomBytes(3).toString("hex");
    const log: string[] = [];
    let net: NamespacePair | undefined;
    const home = mkdtempSync(join(tmpdir(), "pith-drill-"));
    // Registered before anything exists, so a failure anywhere below still cleans up.
    t.after(() => {
      net?.destroy();
      rmSync(home, { recursive: true, force: true });
    });

    execFileSync("make", ["-s", "-C", join(pithRoot(), "examples/static-c")], { stdio: "inherit" });
    execFileSync("make", ["-s", "-C", join(pithRoot(), "test/fixtures/escape-drill")], { stdio: "inherit" });
    const drillImage = await buildImage(await loadAppManifest(join(pithRoot(), "test/fixtures/escape-drill")));
    const bystanderImage = await appImage("examples/static-c");
    for (const shared of ["kernel", "images", "tools"]) {
      mkdirSync(join(pithHome(), shared), { recursive: true });
      symlinkSync(join(pithHome(), shared), join(home, shared));
    }

    net = createNamespacePair(id, `127.0.0.1 localhost\n${TARGET} ${DECLARED_NAME}\n`, "nameserver 192.0.2.53\n");
    // Before anything runs in them: no default route, nothing but the test's own networks.
    for (const ns of [net.inner, net.outside]) {
      const routes = net.routes(ns);
      assert.doesNotMatch(routes, /^default/m, `${ns} has a default route:\n${routes}`);
      for (const line of routes.split("\n").filter(Boolean)) {
        assert.match(line, /^(192\.0\.2\.0\/24|198\.51\.100\.0\/24|203\.0\.113\.0\/24|198\.18\.0\.0\/30|2001:db8:|fe80::|multicast|local|anycast)/, `${ns} routes somewhere unexpected: ${line}`);
      }
    }

    const outside = collect(
      net.spawnIn(net.outside, [process.execPath, "--import", "tsx", join(pithRoot(), "test/support/drill-outside.ts")], {
        cwd: pithRoot(),
        env: { ...process.env, DRILL_TARGET: `${TARGET}:${DECLARED_PORT}` },
      }),
      log,
      "listening",
    );
    await within(outside.ready, 30_000, "the outside listeners", log);
    const countersBefore = net.counters(net.outside);

    const host = collect(
      net.spawnIn(net.inner, [process.execPath, "--import", "tsx", join(pithRoot(), "test/support/drill-host.ts")], {
        cwd: pithRoot(),
        env: {
          ...process.env,
          PITH_HOME: home,
          PITH_ACCEL: process.env.PITH_ACCEL ?? "tcg",
          DRILL_IMAGE: drillImage.record.digest,
          BYSTANDER_IMAGE: bystanderImage.record.digest,
          DRILL_NODE: `drill-${id}`,
          DRILL_HOSTS_FILE: join(net.etcDir, "hosts"),
          DRILL_REPOINTED: `127.0.0.1 localhost ${DECLARED_NAME}\n`,
          DRILL_FLOOD_MS: String(FLOOD_WATCH_MS),
        },
      }),
      log,
    );
    const exitCode = await within(host.exited, 600_000, "the drill to finish", log);
    const countersAfter = net.counters(net.outside);
    const events = [...host.events, ...outside.events];
    const error = events.find((e) => e.event === "error");
    assert.equal(error, undefined, `the drill's host side failed: ${String(error?.message)}\n${log.slice(-80).join("\n")}`);
    assert.equal(exitCode, 0, log.slice(-80).join("\n"));

    const probes = events.filter((e) => e.event === "probe").map((e) => e.result as ProbeResult);
    const report = events.find((e) => e.event === "report") as unknown as Report | undefined;
    for (const p of probes) t.diagnostic(`probe ${p.probe} ${p.proto} ${p.target}: reached=${p.reached} connected=${p.connected} ${p.error} ${p.note}`.trim());
    t.diagnostic(`report: ${JSON.stringify(report)}`);
    assert.ok(report, `the drill reported:\n${log.slice(-80).join("\n")}`);

    await t.test("the declared destination answers: the drill could see an answer if there were one", () => {
      const control = probes.find((p) => p.probe === "declared-egress");
      assert.equal(control?.reached, true, JSON.stringify(control));
      assert.equal(outside.events.filter((e) => e.event === "target").length, 1, "the declared target was reached exactly once, by the control");
    });

    const undeclared = probes.filter((p) => p.probe !== "declared-egress" && p.probe !== "declared-name-repointed-to-loopback");
    await t.test(`at least ${MIN_PROBES} undeclared reaches were tried`, () => {
      assert.ok(undeclared.length >= MIN_PROBES, `only ${undeclared.length}: ${undeclared.map((p) => p.probe).join(", ")}`);
    });

    for (const probe of undeclared) {
      await t.test(`probe ${probe.probe} (${probe.proto} ${probe.target}) reaches nothing`, () => {
        assert.equal(probe.reached, false, JSON.stringify(probe));
      });
    }

    await t.test("the declared name, re-pointed at 127.0.0.1, does not lead to the host's loopback", () => {
      const repointed = probes.find((p) => p.probe === "declared-name-repointed-to-loopback");
      assert.ok(repointed, "the drill ran the re-pointed probe");
      assert.equal(events.find((e) => e.event === "repointed")?.answer, "ok", "the drill was told the name was re-pointed");
      assert.equal(repointed.reached, false, JSON.stringify(repointed));
    });

    await t.test("nothing reached the listeners beside Pith on 127.0.0.1", () => {
      assert.deepEqual(events.filter((e) => e.event === "loopback-hit"), []);
    });

    await t.test("nothing but the control reached the outside namespace", () => {
      assert.deepEqual(outside.events.filter((e) => e.event === "hit"), []);
      const counted = {
        tcpConnectionsAccepted: delta(countersAfter, countersBefore, "Tcp.PassiveOpens"),
        tcpResetsSent: delta(countersAfter, countersBefore, "Tcp.OutRsts"),
        udpDatagrams: delta(countersAfter, countersBefore, "Udp.InDatagrams") + delta(countersAfter, countersBefore, "Udp.NoPorts"),
        icmpEchoRequests: delta(countersAfter, countersBefore, "Icmp.InEchos"),
        udp6Datagrams: delta(countersAfter, countersBefore, "Udp6InDatagrams") + delta(countersAfter, countersBefore, "Udp6NoPorts"),
        icmp6EchoRequests: delta(countersAfter, countersBefore, "Icmp6InEchos"),
      };
      assert.deepEqual(counted, { tcpConnectionsAccepted: 1, tcpResetsSent: 0, udpDatagrams: 0, icmpEchoRequests: 0, udp6Datagrams: 0, icmp6EchoRequests: 0 });
    });

    await t.test("the host process stays up through the flood", () => {
      assert.equal(report.pithAlive, true, log.filter((l) => l.includes("pith-exited")).join("\n"));
    });

    await t.test(`the host process's memory stays bounded (< ${RSS_LIMIT_KB / 1024} MiB, < ${RSS_GROWTH_LIMIT_KB / 1024} MiB growth)`, () => {
      assert.ok(report.rssMaxKb < RSS_LIMIT_KB, `max RSS ${report.rssMaxKb} kB`);
      assert.ok(report.rssMaxKb - report.rssBeforeKb < RSS_GROWTH_LIMIT_KB, `RSS grew from ${report.rssBeforeKb} kB to ${report.rssMaxKb} kB`);
    });

    await t.test("the flooding machine is failed, with a reason naming the flood", () => {
      assert.equal(report.drill.phase, "failed", `after ${report.floodMs} ms of flood the drill is ${report.drill.phase} (${report.consoleBytes} bytes of console)`);
      assert.match(report.drill.reason, /flood|console|control/i);
    });

    await t.test("the bystander machine is not touched by the flood", () => {
      assert.equal(report.bystander.phase, "ready");
    });
  });
});
