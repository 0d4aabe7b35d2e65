import { isScalar } from "yaml";
import { systemError } from "../shared/errors.ts";
import type { Ctx, YNode } from "./context.ts";
import { readEgress } from "./egress.ts";
import { readEnv } from "./env.ts";
import { readFiles } from "./files.ts";
import { readListen } from "./listen.ts";
import { readMemory, readVcpus } from "./machine.ts";
import { readName } from "./name.ts";
import { readNode } from "./node-packages.ts";
import { expected, isNothing, readList, readMap, readString, type Entry } from "./read.ts";
import { readReadiness } from "./readiness.ts";
import { parseDurationMs } from "./sizes.ts";
import { readSource } from "./source.ts";
import { readVolumes } from "./volumes.ts";
import type { AppManifest } from "./types.ts";

export const FIELDS = [
  "name", "entry", "binary", "args", "memory", "vcpus", "listen", "egress", "env", "readiness", "readyTimeout",
  "files", "node", "volumes",
] as const;

const DEFAULT_MEMORY_MIB = { entry: 512, binary: 128 } as const;
const DEFAULT_READY_TIMEOUT_MS = 60_000;
const MAX_ARGS = 254;

/**
 * Checks the top-level mapping field by field, collecting every problem in `ctx`. Returns the
 * manifest only when nothing was wrong.
 */
export function validateManifest(ctx: Ctx, root: YNode): AppManifest | undefined {
  const fields = readMap(ctx, root, "", FIELDS);
  if (!fields) return undefined;
  // An empty `key:` reads as "not given", so commenting out every item of a list is harmless.
  const given = (key: string): Entry | undefined => {
    const e = fields.get(key);
    return e && !isNothing(e.value) ? e : undefined;
  };
  const optional = <T>(key: string, read: (e: Entry) => T | undefined, fallback: T): T | undefined => {
    const e = given(key);
    return e ? read(e) : fallback;
  };

  const name = readName(ctx, fields.get("name"));
  const source = readSource(ctx, given("entry"), given("binary"));
  // Defaults depend on which kind of app was declared, even if its path turned out to be bad.
  const kind = source?.kind ?? (given("binary") && !given("entry") ? "binary" : "entry");
  const args = optional("args", (e) => readArgs(ctx, e), []);
  const memoryMiB = optional("memory", (e) => readMemory(ctx, e.value, e.at), DEFAULT_MEMORY_MIB[kind]);
  const vcpus = optional("vcpus", (e) => readVcpus(ctx, e.value, e.at), 1);
  const listen = optional("listen", (e) => readListen(ctx, e.value, e.at), []);
  const egress = optional("egress", (e) => readEgress(ctx, e.value, e.at), []);
  const env = optional("env", (e) => readEnv(ctx, e.value, e.at), {});
  const readiness = readReadiness(ctx, given("readiness"), kind, listen);
  const readyTimeoutMs = optional("readyTimeout", (e) => readTimeout(ctx, e.value, e.at), DEFAULT_READY_TIMEOUT_MS);
  const volumes = optional("volumes", (e) => readVolumes(ctx, e.value, e.at), []);
  // Where files may go depends on the app's own path, so they are read only once that is known.
  const files = source ? optional("files", (e) => readFiles(ctx, e, source), []) : [];
  const node = optional("node", (e) => readNode(ctx, e, source), { external: [], codeCache: false });

  if (ctx.problems.length > 0) return undefined;
  // No problems means every reader succeeded; the check below only narrows the types.
  if (name === undefined || source === undefined || args === undefined || memoryMiB === undefined || vcpus === undefined
    || listen === undefined || egress === undefined || env === undefined || readiness === undefined || readyTimeoutMs === undefined
    || files === undefined || node === undefined || volumes === undefined) {
    throw systemError("MANIFEST_INTERNAL", "manifest validation dropped a field without reporting a problem");
  }
  return { name, dir: ctx.dir, source, args, memoryMiB, vcpus, listen, egress, env, readiness, readyTimeoutMs, files, node, volumes };
}

function readArgs(ctx: Ctx, { value, at }: Entry): string[] | undefined {
  const items = readList(ctx, value, at, "a list of strings", 'write it as a list, e.g. args: ["--port", "8080"]');
  if (!items) return undefined;
  // init reads /pith/argv as NUL-separated strings into a vector of 256 (the program's path first).
  if (items.length > MAX_ARGS) {
    ctx.report(value, at, `${items.length} arguments (at most ${MAX_ARGS})`, "pass long lists through a file in the image");
    return undefined;
  }
  const args = items.map((item) => {
    const text = readString(ctx, item.node, item.at);
    if (text?.includes("\0")) {
      ctx.report(item.node, item.at, "the argument contains a NUL character", "remove the \\0 from it");
      return undefined;
    }
    return text;
  });
  return args.every((a) => a !== undefined) ? (args as string[]) : undefined;
}

function readTimeout(ctx: Ctx, node: YNode, at: string): number | undefined {
  const what = 'a duration like "30s"';
  if (isScalar(node) && typeof node.value === "number") {
    return expected(ctx, node, at, what, `add a unit, e.g. "${node.source ?? node.value}s"`);
  }
  const text = readString(ctx, node, at, what);
  if (text === undefined) return undefined;
  const parsed = parseDurationMs(text);
  if (!parsed.ok) {
    ctx.report(node, at, parsed.message, parsed.hint);
    return undefined;
  }
  if (parsed.value > 0) return parsed.value;
  ctx.report(node, at, "the timeout must be longer than zero", 'use a duration like "30s"');
  return undefined;
}
