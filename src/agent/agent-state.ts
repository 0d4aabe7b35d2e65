import { appendFile, readFile, rename, rm } from "node:fs/promises";
import { dirname, join } from "node:path";
import { pithHome } from "../shared/paths.ts";
import { ensurePrivateDir, PRIVATE_FILE_MODE, writePrivateFile } from "../shared/private-files.ts";

/**
 * The agent's only local state: a handle (the QEMU pid) per machine it runs. A restarted agent
 * finds its machines in /proc; a handle names the machine a pid now is (a claimed warm machine's
 * QEMU keeps its pool name). It is not the truth: a QEMU spawned but not yet recorded has none.
 */
export interface AgentState {
  node: string;
  machines: Record<string, { pid: number }>;
}

/**
 * A log of starts and stops, one JSON line each, so recording a machine costs an append of its
 * own line rather than a rewrite of every handle (10,000 machines made each rewrite ~0.5 MB). It
 * is rewritten whole, from the live handles, only when stale lines outnumber the live ones.
 */
export const agentStatePath = (node: string): string => join(pithHome(), "agent", `${node}.log`);
/** Where agents before the log kept the whole state as one JSON document: read if there is no log. */
const legacyStatePath = (node: string): string => join(pithHome(), "agent", `${node}.json`);

/** One line of the log. */
type Entry = { start: string; pid: number } | { stop: string };

/** A log no bigger than this many lines is never worth rewriting. */
const COMPACT_AT_LEAST = 64;

export async function readAgentState(node: string): Promise<AgentState | undefined> {
  const log = await readFile(agentStatePath(node), "utf8").catch(() => undefined);
  if (log !== undefined) return { node, machines: replay(log) };
  try {
    const state = JSON.parse(await readFile(legacyStatePath(node), "utf8")) as AgentState;
    return state.node === node && state.machines && typeof state.machines === "object" ? state : undefined;
  } catch {
    return undefined;
  }
}

/**
 * The handles a log leaves: each line that parses applies in order; any other line (a write cut
 * short by a crash, or garbage) is skipped, so one bad line loses at most its own machine.
 */
function replay(log: string): AgentState["machines"] {
  const machines = new Map<string, { pid: number }>();
  for (const line of log.split("\n")) {
    const entry = parseEntry(line);
    if (!entry) continue;
    if ("stop" in entry) machines.delete(entry.stop);
    else machines.set(entry.start, { pid: entry.pid });
  }
  return Object.fromEntries(machines);
}

function parseEntry(line: string): Entry | undefined {
  if (line.trim() === "") return undefined;
  try {
    const value = JSON.parse(line) as Record<string, unknown>;
    if (typeof value.start === "string" && Number.isSafeInteger(value.pid) && (value.pid as number) > 0) return { start: value.start, pid: value.pid as number };
    if (typeof value.stop === "string") return { stop: value.stop };
  } catch {
    // not a line this log wrote
  }
  return undefined;
}

/**
 * Records starts and stops as the agent makes them. Changes are coalesced: whoever asks for a
 * save gets the next append not yet started, which carries every change made before it starts,
 * so a thousand starts cost a few appends.
 */
export class AgentStateLog {
  private pending: Entry[] = [];
  private lines = 0;
  private writing: Promise<void> = Promise.resolve();
  private next: Promise<void> | undefined;

  constructor(
    private readonly node: string,
    /** The handles as they are now (what a rewrite records), and how many there are, without listing them. */
    private readonly live: { handles(): AgentState["machines"]; count(): number },
  ) {}

  started(name: string, pid: number): void {
    this.pending.push({ start: name, pid });
  }

  stopped(name: string): void {
    this.pending.push({ stop: name });
  }

  /**
   * Writes every change recorded so far (the first save of a log rewrites it from the live
   * handles, which also replaces a legacy JSON state). Resolves once they are written.
   */
  save(): Promise<void> {
    this.next ??= this.writing.then(() => {
      this.next = undefined;
      return this.write();
    });
    this.writing = this.next;
    return this.next;
  }

  private async write(): Promise<void> {
    const entries = this.pending;
    this.pending = [];
    const path = agentStatePath(this.node);
    if (this.lines === 0 || this.lines + entries.length > Math.max(COMPACT_AT_LEAST, 2 * this.live.count())) {
      await this.rewrite(path, this.live.handles());
      return;
    }
    if (entries.length === 0) return;
    try {
      await appendFile(path, entries.map((e) => JSON.stringify(e) + "\n").join(""), { mode: PRIVATE_FILE_MODE });
      this.lines += entries.length;
    } catch (error) {
      // The next save rewrites the log from the live handles instead of appending to it.
      this.lines = 0;
      throw error;
    }
  }

  /** The live handles only, staged and renamed into place so a crash leaves the old log or the new one. */
  private async rewrite(path: string, live: AgentState["machines"]): Promise<void> {
    await ensurePrivateDir(dirname(path));
    const staging = `${path}.${process.pid}.tmp`;
    const lines = Object.entries(live).map(([name, { pid }]) => JSON.stringify({ start: name, pid }) + "\n");
    await writePrivateFile(staging, lines.join(""));
    await rename(staging, path);
    await rm(legacyStatePath(this.node), { force: true });
    // Counted as at least one line, so the next save appends rather than rewrites an empty log.
    this.lines = Math.max(1, lines.length);
  }
}
