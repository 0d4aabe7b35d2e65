import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { userError } from "../../shared/errors.ts";
import { isAlive } from "../../shared/file-lock.ts";
import { RuntimeApi } from "./runtime-api.ts";

const START_LIMIT_MS = 10_000;
/** A reload that has not produced a new worker by then is asked for again. */
const RELOAD_RESIGNAL_MS = 1_000;
/** How long a reload waits for the old worker to go before it calls the new routes applied. */
const OLD_WORKER_WAIT_MS = 3_000;
/** How long a stop waits for HAProxy to go after SIGTERM before it kills the whole group. */
const STOP_LIMIT_MS = 3_000;

/** The haproxy binary, or a user error saying how to install it. */
export function findHaproxy(): string {
  if (existsSync("/usr/sbin/haproxy")) return "/usr/sbin/haproxy";
  const found = spawnSync("sh", ["-c", "command -v haproxy"], { encoding: "utf8" });
  const path = found.stdout.trim();
  if (found.status === 0 && path) return path;
  throw userError("HAPROXY_MISSING", "the haproxy proxy engine needs HAProxy 2.6, and haproxy is not installed", "install it with apt-get install haproxy, or use --engine node");
}

/** Where one HAProxy's files live: a private temporary dir per process. */
export interface HaproxyPaths {
  dir: string;
  config: string;
  map: string;
  socket: string;
}

/** The texts of haproxy.cfg and hosts.map. */
export interface HaproxyFiles {
  config: string;
  map: string;
}

/**
 * One HAProxy master-worker process, a child of Pith: its state dir and files, its start, seamless
 * reloads, stop, and its admin socket (runtime API). What to tell it is not decided here.
 */
export class HaproxyProcess {
  readonly #haproxy: string;
  readonly #onExit: (error: Error) => void;
  #paths: HaproxyPaths | undefined;
  #api: RuntimeApi | undefined;
  #child: ChildProcess | undefined;
  /** The haproxy master's pid (its shell wrapper is #child). */
  #master: number | undefined;
  #output: string[] = [];
  #stopping = false;
  readonly #killOnExit = (): void => this.#killGroup();

  /** `onExit`: HAProxy ended while it should have been serving. */
  constructor(options: { haproxy: string; onExit: (error: Error) => void }) {
    this.#haproxy = options.haproxy;
    this.#onExit = options.onExit;
  }

  /** Its files, once start() has made its dir. */
  get paths(): HaproxyPaths | undefined {
    return this.#paths;
  }

  /** The shell wrapper's process group: HAProxy's master and workers are in it. */
  get processGroup(): number | undefined {
    return this.#child?.pid;
  }

  /**
   * Makes the state dir, writes the files `files` makes for its paths, checks the config, and
   * starts HAProxy; resolves once it answers on its admin socket and accepts on host:port.
   */
  async start(listen: { host: string; port: number }, files: (paths: HaproxyPaths) => HaproxyFiles): Promise<void> {
    if (this.#paths) throw new Error("HaproxyProcess.start() was already called");
    removeStaleDirs();
    const dir = mkdtempSync(join(tmpdir(), "pith-haproxy-"));
    writeFileSync(join(dir, "owner"), String(process.pid));
    this.#paths = { dir, config: join(dir, "haproxy.cfg"), map: join(dir, "hosts.map"), socket: join(dir, "admin.sock") };
    this.#api = new RuntimeApi(this.#paths.socket);
    process.on("exit", this.#killOnExit);
    try {
      this.#write(files(this.#paths));
      const check = spawnSync(this.#haproxy, ["-c", "-q", "-f", this.#paths.config], { encoding: "utf8" });
      if (check.status !== 0) throw new Error(`haproxy rejected the generated config ${this.#paths.config}: ${check.stderr.trim() || check.stdout.trim()}`);
      await this.#spawn(listen);
    } catch (error) {
      await this.stop();
      throw error;
    }
  }

  /** Runs runtime API commands in one connection; resolves with HAProxy's answer. */
  run(commands: readonly string[], timeoutMs?: number): Promise<string> {
    if (!this.#api) return Promise.reject(new Error("haproxy is not started"));
    return this.#api.run(commands, timeoutMs);
  }

  /** Writes new files and reloads seamlessly (SIGUSR2); resolves once a new worker serves and the old one has let go. */
  async reload(files: HaproxyFiles): Promise<void> {
    const before = workerPid(await this.run(["show info"]));
    this.#write(files);
    if (this.#master === undefined) throw new Error("haproxy master pid unknown: cannot reload");
    const deadline = Date.now() + START_LIMIT_MS;
    // A master just started can miss a USR2 (seen: the first reload after start never came, 1 run
    // in several). A second reload is harmless, so the signal is repeated until a new worker answers.
    let signalledAt = 0;
    for (;;) {
      if (Date.now() - signalledAt >= RELOAD_RESIGNAL_MS) {
        signal(this.#master, "SIGUSR2");
        signalledAt = Date.now();
      }
      const pid = workerPid(await this.run(["show info"]).catch(() => ""));
      if (pid !== undefined && pid !== before) break;
      if (Date.now() > deadline) throw new Error(`haproxy did not reload within ${START_LIMIT_MS} ms:\n${this.#output.join("\n")}`);
      await delay(50);
    }
    // Until the old worker has let go of the listener, a new connection can still land on it and
    // be reset as it stops (seen as ECONNRESET right after a reload). Idle connections close on a
    // soft stop, so this is quick; a long request only delays the wait, up to its bound.
    const oldWorkerGone = Date.now() + OLD_WORKER_WAIT_MS;
    while (before !== undefined && isAlive(before) && Date.now() < oldWorkerGone) await delay(20);
  }

  /** Stops HAProxy (its workers finish nothing: a stop is a stop), removes its socket and files. */
  async stop(): Promise<void> {
    if (this.#stopping) return;
    this.#stopping = true;
    const child = this.#child;
    if (child && child.exitCode === null && child.signalCode === null) {
      const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
      if (this.#master !== undefined) signal(this.#master, "SIGTERM");
      else this.#killGroup();
      const timer = setTimeout(() => this.#killGroup(), STOP_LIMIT_MS);
      await exited;
      clearTimeout(timer);
    }
    // The shell exits when HAProxy's master does; a worker may still hold the listening socket a
    // moment longer (a connection made then is reset, not refused). Stopped means the group is gone.
    if (child?.pid !== undefined) await waitForGroupGone(child.pid);
    child?.stdin?.destroy();
    process.off("exit", this.#killOnExit);
    if (this.#paths) rmSync(this.#paths.dir, { recursive: true, force: true });
  }

  #write(files: HaproxyFiles): void {
    const paths = this.#paths!;
    writeFileSync(paths.map, files.map);
    writeFileSync(paths.config, files.config);
  }

  async #spawn(listen: { host: string; port: number }): Promise<void> {
    // A shell between Pith and HAProxy holds Pith's end of a pipe: when Pith dies, even by SIGKILL,
    // the pipe closes and the shell stops HAProxy. Its own process group lets stop() kill all of it.
    const script = [
      "exec 3<&0",
      'haproxy="$1"; shift',
      '"$haproxy" -W -db "$@" </dev/null &',
      "pid=$!",
      'echo "pith-haproxy-master $pid"',
      '( read -r _ <&3; kill -TERM "$pid" 2>/dev/null ) &',
      "watcher=$!",
      'wait "$pid"; code=$?',
      'kill "$watcher" 2>/dev/null',
      'exit "$code"',
    ].join("\n");
    const child = spawn("sh", ["-c", script, "sh", this.#haproxy, "-f", this.#paths!.config], { detached: true, stdio: ["pipe", "pipe", "pipe"] });
    this.#child = child;
    const exited = new Promise<never>((_, reject) => {
      child.once("exit", (code, signal) => {
        if (!this.#stopping) this.#onExit(new Error(`haproxy exited (${code ?? signal}):\n${this.#output.slice(-10).join("\n")}`));
        reject(new Error(`haproxy exited (${code ?? signal}) before serving:\n${this.#output.slice(-10).join("\n")}`));
      });
      child.once("error", reject);
    });
    exited.catch(() => undefined);
    for (const stream of [child.stdout!, child.stderr!]) {
      stream.setEncoding("utf8").on("data", (chunk: string) => {
        for (const line of chunk.split("\n")) {
          const master = /^pith-haproxy-master (\d+)$/.exec(line);
          if (master) this.#master = Number(master[1]);
          else if (line) this.#output.push(line);
        }
        if (this.#output.length > 200) this.#output.splice(0, this.#output.length - 100);
      });
    }
    const ready = (async () => {
      const deadline = Date.now() + START_LIMIT_MS;
      for (;;) {
        const up = (await this.run(["show info"], 1000).then(workerPid, () => undefined)) !== undefined && (await canConnect(listen.host, listen.port));
        if (up && this.#master !== undefined) return;
        if (Date.now() > deadline) throw new Error(`haproxy did not start within ${START_LIMIT_MS} ms:\n${this.#output.join("\n")}`);
        await delay(25);
      }
    })();
    await Promise.race([ready, exited]);
  }

  #killGroup(): void {
    const pid = this.#child?.pid;
    if (pid !== undefined) signal(-pid, "SIGKILL");
  }
}

const delay = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** Sends a signal to a process (or, negative, a group) that may be gone already. */
function signal(pid: number, name: NodeJS.Signals | 0): boolean {
  try {
    process.kill(pid, name);
    return true;
  } catch {
    return false; // already gone
  }
}

const groupAlive = (pgid: number): boolean => signal(-pgid, 0);

/** Waits until no process of the group is left, killing what is left after `limitMs`. */
async function waitForGroupGone(pgid: number, limitMs = 3000): Promise<void> {
  const deadline = Date.now() + limitMs;
  while (groupAlive(pgid)) {
    if (Date.now() > deadline) {
      if (!signal(-pgid, "SIGKILL")) return;
      if (Date.now() > deadline + 1000) return;
    }
    await delay(10);
  }
}

/**
 * State dirs of Pith processes that died without closing (SIGKILL): their HAProxy is gone with
 * them (see #spawn), their config, map and socket are left; the next start removes them.
 */
function removeStaleDirs(): void {
  for (const name of readdirSync(tmpdir())) {
    if (!name.startsWith("pith-haproxy-")) continue;
    const dir = join(tmpdir(), name);
    let owner: number;
    try {
      owner = Number(readFileSync(join(dir, "owner"), "utf8"));
    } catch {
      continue; // not ours to judge (or being created right now)
    }
    if (!Number.isInteger(owner) || owner <= 0 || owner === process.pid) continue;
    try {
      process.kill(owner, 0);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === "ESRCH") rmSync(dir, { recursive: true, force: true });
    }
  }
}

function workerPid(info: string): number | undefined {
  const match = /^Pid: (\d+)$/m.exec(info);
  return match ? Number(match[1]) : undefined;
}

function canConnect(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host: host === "0.0.0.0" ? "127.0.0.1" : host === "::" ? "::1" : host, port });
    socket.once("connect", () => {
      socket.destroy();
      resolve(true);
    });
    socket.once("error", () => resolve(false));
  });
}
