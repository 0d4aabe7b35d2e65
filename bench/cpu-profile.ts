/**
 * A V8 CPU profile of the running process, summarised by area (each bench says what its areas
 * are) and by function: self time, and inclusive time of Pith's own functions, with TypeScript
 * line numbers from tsx's source maps (so it must run inside the profiled process).
 */
import { writeFile } from "node:fs/promises";
import { Session } from "node:inspector/promises";
import { findSourceMap } from "node:module";
import { pithRoot } from "../src/shared/paths.ts";

export interface CallFrame {
  functionName: string;
  url: string;
  lineNumber: number;
  columnNumber: number;
}
interface ProfileNode {
  id: number;
  callFrame: CallFrame;
  hitCount?: number;
  children?: number[];
}
interface CpuProfile {
  nodes: ProfileNode[];
  startTime: number;
  endTime: number;
  samples?: number[];
}

export interface ProfileSummary {
  file: string;
  /** Wall time profiled. */
  totalMs: number;
  /** Samples not idle: the process's busy share of totalMs. */
  busyMs: number;
  byArea: { area: string; ms: number }[];
  selfTop: { fn: string; ms: number }[];
  /** Pith's own functions (src/), including what they call. */
  inclusiveTop: { fn: string; ms: number }[];
}

export interface SummaryOptions {
  /** The area a frame's time counts towards; "idle" is not busy time. */
  area: (frame: CallFrame) => string;
  selfTop: number;
}

export const ROOT = pithRoot();

export interface CpuProfiler {
  stop(file: string): Promise<ProfileSummary>;
}

export async function startCpuProfile(intervalUs: number, options: SummaryOptions): Promise<CpuProfiler> {
  const session = new Session();
  session.connect();
  await session.post("Profiler.enable");
  await session.post("Profiler.setSamplingInterval", { interval: intervalUs });
  await session.post("Profiler.start");
  return {
    async stop(file: string) {
      const { profile } = (await session.post("Profiler.stop")) as unknown as { profile: CpuProfile };
      session.disconnect();
      await writeFile(file, JSON.stringify(profile));
      return summarise(profile, file, options);
    },
  };
}

/** `name file:line`, the line in the TypeScript source (tsx compiles each file to one line; its source maps say where). */
function label(frame: CallFrame): string {
  if (!frame.url) return `${frame.functionName || "(anonymous)"} (native)`;
  let line = frame.lineNumber + 1;
  try {
    const entry = findSourceMap(frame.url)?.findEntry(frame.lineNumber, frame.columnNumber) as { originalLine?: number } | undefined;
    if (entry?.originalLine !== undefined) line = entry.originalLine + 1;
  } catch {
    // no source map: the generated line it is
  }
  return `${frame.functionName || "(anonymous)"} ${frame.url.replace(/^file:\/\//, "").replace(`${ROOT}/`, "")}:${line}`;
}

function summarise(profile: CpuProfile, file: string, { area, selfTop }: SummaryOptions): ProfileSummary {
  const totalMs = (profile.endTime - profile.startTime) / 1000;
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const hits = new Map<number, number>();
  if (profile.samples) for (const id of profile.samples) hits.set(id, (hits.get(id) ?? 0) + 1);
  else for (const n of profile.nodes) hits.set(n.id, n.hitCount ?? 0);
  const totalHits = [...hits.values()].reduce((a, b) => a + b, 0) || 1;
  const msPerHit = totalMs / totalHits;

  const areas = new Map<string, number>();
  const self = new Map<string, number>();
  let idle = 0;
  for (const [id, count] of hits) {
    const node = byId.get(id);
    if (!node) continue;
    const a = area(node.callFrame);
    if (a === "idle") idle += count;
    areas.set(a, (areas.get(a) ?? 0) + count * msPerHit);
    const key = label(node.callFrame);
    self.set(key, (self.get(key) ?? 0) + count * msPerHit);
  }

  // Inclusive time of Pith's functions, each counted once per stack (recursion is not doubled).
  const inclusive = new Map<string, number>();
  const subtotal = new Map<number, number>();
  const total = (id: number): number => {
    const cached = subtotal.get(id);
    if (cached !== undefined) return cached;
    const node = byId.get(id)!;
    const sum = (hits.get(id) ?? 0) + (node.children ?? []).reduce((a, c) => a + total(c), 0);
    subtotal.set(id, sum);
    return sum;
  };
  const root = profile.nodes[0];
  if (root) {
    const stack: [number, Set<string>][] = [[root.id, new Set()]];
    while (stack.length > 0) {
      const [id, above] = stack.pop()!;
      const node = byId.get(id)!;
      const key = label(node.callFrame);
      const isPith = node.callFrame.url.includes(`${ROOT}/src/`);
      if (isPith && !above.has(key)) inclusive.set(key, (inclusive.get(key) ?? 0) + total(id) * msPerHit);
      const next = isPith ? new Set(above).add(key) : above;
      for (const child of node.children ?? []) stack.push([child, next]);
    }
  }
  const top = (m: Map<string, number>, n: number) =>
    [...m.entries()]
      .sort((a, b) => b[1] - a[1])
      .slice(0, n)
      .map(([fn, ms]) => ({ fn, ms: Math.round(ms) }));
  return {
    file,
    totalMs: Math.round(totalMs),
    busyMs: Math.round((totalHits - idle) * msPerHit),
    byArea: [...areas.entries()].sort((a, b) => b[1] - a[1]).map(([area, ms]) => ({ area, ms: Math.round(ms) })),
    selfTop: top(self, selfTop),
    inclusiveTop: top(inclusive, 15),
  };
}
