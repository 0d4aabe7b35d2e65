/**
 * The guest library: what an app imports to live in a Pith machine.
 *
 *   import { ready, onShutdown, config, egressAddress } from "pith/guest";
 *
 * It talks to the machine's init over the pipe init hands the app (PITH_CONTROL_FD). Outside a
 * Pith machine every call is harmless, so the same code runs on a laptop.
 */
import { writeSync } from "node:fs";

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

function send(message: string): void {
  const fd = Number(process.env.PITH_CONTROL_FD);
  if (!Number.isInteger(fd)) return;
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
