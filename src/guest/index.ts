/**
 * The guest library: what an app imports to live in a Pith machine.
 *
 *   import { ready, onShutdown, onRestore, config, egressAddress } from "pith/guest";
 *
 * It talks to the machine's init over the socket init hands the app (PITH_CONTROL_FD). Outside a
 * Pith machine every call is harmless, so the same code runs on a laptop.
 */
import { createRequire, syncBuiltinESMExports } from "node:module";
import { writeSync } from "node:fs";
import { Socket } from "node:net";
import { scavenge } from "./scavenge.ts";

export interface MachineConfig {
  /** This machine's unique id (a new one for every machine, even of the same image). */
  machineId: string | undefined;
  /** The image's name and digest. */
  name: string | undefined;
  image: string | undefined;
  /** Ports the image declared in `listen`. */
  listen: number[];
  /** Declared egress destination ("host:port") to the address the guest must dial for it. */
  egress: Record<string, string>;
  /** The app's environment: the image's `env`, overridden by the machine's. */
  env: Record<string, string>;
  inPith: boolean;
}

export function config(): MachineConfig {
  const env = process.env;
  const own = Object.fromEntries(Object.entries(env).filter((e): e is [string, string] => e[1] !== undefined && !e[0].startsWith("PITH_")));
  return {
    machineId: env.PITH_MACHINE_ID,
    name: env.PITH_NAME,
    image: env.PITH_IMAGE,
    listen: (env.PITH_LISTEN ?? "").split(",").filter(Boolean).map(Number),
    egress: parseEgress(env.PITH_EGRESS),
    env: own,
    inPith: env.PITH_CONTROL_FD !== undefined,
  };
}

function parseEgress(text: string | undefined): Record<string, string> {
  if (!text) return {};
  try {
    return JSON.parse(text) as Record<string, string>;
  } catch {
    return {};
  }
}

/**
 * Where to connect for a declared egress destination. Inside a machine each destination has its
 * own address on the machine's network (the host relays it and nothing else); outside one, it is
 * the destination itself. An undeclared destination throws: the machine could not reach it.
 */
export function egressAddress(destination: string): { host: string; port: number } {
  const { egress, inPith } = config();
  const target = inPith ? egress[destination] : destination;
  if (!target) throw new Error(`egress to ${destination} is not declared in pith.yaml (declared: ${Object.keys(egress).join(", ") || "none"})`);
  const colon = target.lastIndexOf(":");
  return { host: target.slice(0, colon), port: Number(target.slice(colon + 1)) };
}

let saidReady = false;

/** Tells Pith the app can serve: only now does the machine become ready and routable. */
export function ready(): void {
  if (saidReady) return;
  saidReady = true;
  send("ready");
}

function controlFd(): number | undefined {
  const fd = Number(process.env.PITH_CONTROL_FD);
  return Number.isInteger(fd) && fd > 2 ? fd : undefined;
}

function send(message: string): void {
  const fd = controlFd();
  if (fd === undefined) return;
  try {
    writeSync(fd, `${message}\n`);
  } catch {
    // init is gone only when the machine is going down; nothing useful to do.
  }
}

type Hook = () => void | Promise<void>;
const shutdownHooks: Hook[] = [];
let shuttingDown = false;

/**
 * Runs `hook` when the machine is asked to stop (SIGTERM from init), before the app exits with
 * code 0. Hooks run in reverse order of registration; Pith kills the app if they take longer
 * than the stop's grace period.
 */
export function onShutdown(hook: Hook): void {
  if (shutdownHooks.length === 0) process.once("SIGTERM", () => void shutdown());
  shutdownHooks.push(hook);
}

async function shutdown(): Promise<void> {
  if (shuttingDown) return;
  shuttingDown = true;
  let code = 0;
  for (const hook of [...shutdownHooks].reverse()) {
    try {
      await hook();
    } catch (e) {
      console.error("pith: shutdown hook failed:", e);
      code = 1;
    }
  }
  process.exit(code);
}

const restoreHooks: Hook[] = [];

/**
 * Runs `hook` after this machine was restored from a snapshot of another one, before it takes
 * traffic: process.env and config() already hold this machine's own identity and env, and the
 * kernel's random generator has been reseeded. Refresh here whatever the app derived from them
 * at start (ids, clients keyed by machine, timestamps). Hooks run in registration order.
 */
export function onRestore(hook: Hook): void {
  restoreHooks.push(hook);
}

/**
 * Inside a machine, listens on PITH_NOTICE_FD for init's restore notice: "env KEY=VALUE" lines, then "restored".
 * Telling init first ("restore-aware") makes it wait for the answer before the machine is
 * routable. The socket is unref'd: it must not keep a finished app alive.
 */
function listenForRestore(): void {
  const fd = Number(process.env.PITH_NOTICE_FD);
  if (!Number.isInteger(fd) || fd <= 2 || controlFd() === undefined) return;
  let socket: Socket;
  try {
    socket = new Socket({ fd, readable: true, writable: false });
  } catch {
    return; // not a descriptor node can read: nothing will be restored here
  }
  socket.unref();
  socket.setEncoding("utf8");
  socket.on("error", () => {});
  let buffered = "";
  let env: [string, string][] = [];
  socket.on("data", (chunk: string) => {
    buffered += chunk;
    let nl: number;
    while ((nl = buffered.indexOf("\n")) >= 0) {
      const line = buffered.slice(0, nl);
      buffered = buffered.slice(nl + 1);
      if (line.startsWith("env ")) {
        const eq = line.indexOf("=");
        if (eq > 4) env.push([line.slice(4, eq), line.slice(eq + 1)]);
      } else if (line === "restored") {
        const apply = env;
        env = [];
        void restored(apply);
      }
    }
  });
  send("restore-aware");
}

async function restored(env: [string, string][]): Promise<void> {
  const began = performance.now();
  // Only what changed: under emulation each write to process.env costs, and most are the same.
  const changed = env.filter(([key, value]) => process.env[key] !== value);
  for (const [key, value] of changed) process.env[key] = value;
  const envDone = performance.now();
  // Every restored machine has an id of its own, so a notice that changes nothing is no restore:
  // it is a machine rehearsing the handshake before it is frozen (a snapshot source before it is
  // saved, a warm machine before it is paused), so that this code is compiled by then. This
  // machine is still itself: no hook, its randomness is its own. Its young generation is emptied,
  // so that no scavenge is due when it serves again.
  const rehearsal = changed.length === 0;
  let gcMs: number | undefined;
  if (rehearsal) {
    const gcBegan = performance.now();
    try {
      scavenge();
      gcMs = performance.now() - gcBegan;
    } catch (e) {
      say(`no scavenge before the freeze: ${(e as Error).message}`);
    }
  } else {
    staleRandomness.uuid = staleRandomness.int = true;
    for (const hook of restoreHooks) {
      try {
        await hook();
      } catch (e) {
        console.error("pith: restore hook failed:", e);
      }
    }
  }
  send("restored");
  // On the console, for benchmarks and tests: the guest's own account of its part of a restore.
  const own = rehearsal ? `scavenge ${gcMs === undefined ? "failed" : `${ms(gcMs)} ms`}` : `hooks ${ms(performance.now() - envDone)} ms`;
  say(`${rehearsal ? "rehearsed a restore" : "restored"} in ${ms(performance.now() - began)} ms (env ${ms(envDone - began)} ms, ${own})`);
}

const ms = (value: number): string => value.toFixed(1);

function say(line: string): void {
  try {
    writeSync(2, `pith-guest: ${line}\n`);
  } catch {
    // no console: nothing to say it on
  }
}

/**
 * Node keeps random bytes in two caches (randomUUID's batch of 128, shared with
 * crypto.randomUUID() of the Web Crypto API, and randomInt's 6 KiB), filled before the snapshot
 * and so shared by every machine restored from it. After a restore the next call of either first
 * draws its cache once round, which refills it from OpenSSL (reseeded from the kernel, see
 * ARCHITECTURE.md, snapshots): no value drawn before the restore is served after it. Done at
 * first use rather than at the restore, so an app that never calls them never pays for it (150-300
 * ms under emulation), and the machine is ready sooner.
 */
const staleRandomness = { uuid: false, int: false };

function guardCachedRandomness(): void {
  const crypto = createRequire(import.meta.url)("node:crypto") as typeof import("node:crypto");
  const { randomUUID, randomInt } = crypto;
  const freshUUIDs = (): void => {
    if (!staleRandomness.uuid) return;
    staleRandomness.uuid = false;
    const began = performance.now();
    for (let i = 0; i < 128; i++) randomUUID();
    say(`randomUUID's cache refilled at first use after a restore, in ${ms(performance.now() - began)} ms`);
  };
  const freshInts = (): void => {
    if (!staleRandomness.int) return;
    staleRandomness.int = false;
    const began = performance.now();
    for (let i = 0; i < 1024; i++) randomInt(0xffff_ffff_ffff);
    say(`randomInt's cache refilled at first use after a restore, in ${ms(performance.now() - began)} ms`);
  };
  crypto.randomUUID = ((options?: Parameters<typeof randomUUID>[0]) => (freshUUIDs(), randomUUID(options))) as typeof randomUUID;
  crypto.randomInt = ((...args: unknown[]) => (freshInts(), (randomInt as (...a: unknown[]) => unknown)(...args))) as typeof randomInt;
  const web = globalThis.crypto;
  const webUUID = web.randomUUID.bind(web);
  Object.defineProperty(web, "randomUUID", { value: () => (freshUUIDs(), webUUID()), configurable: true, writable: true });
  // Named imports of node:crypto (the app's `import { randomUUID }`) see the guarded functions too.
  syncBuiltinESMExports();
}

if (process.env.PITH_NOTICE_FD !== undefined) guardCachedRandomness();
listenForRestore();
