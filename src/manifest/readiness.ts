import { isMap, isScalar } from "yaml";
import type { Ctx, YNode } from "./context.ts";
import { readPort } from "./listen.ts";
import { expected, isNothing, readMap, readString, type Entry } from "./read.ts";
import { closest } from "./suggest.ts";
import type { ListenPort, Readiness, SourceKind } from "./types.ts";

const FORMS = `"ready()", "none", { http: { path: /healthz } } or { tcp: {} }`;

/** A probe as written, before its port is resolved against `listen`. */
type Written =
  | { kind: "call" }
  | { kind: "none" }
  | { kind: "http" | "tcp"; path: string; port: number | undefined; node: YNode; portNode: YNode; at: string };

/**
 * When the app counts as started. `listen` is undefined when it was itself invalid, in which case
 * port checks are skipped rather than reported as a second, misleading problem.
 */
export function readReadiness(
  ctx: Ctx, field: Entry | undefined, kind: SourceKind, listen: ListenPort[] | undefined,
): Readiness | undefined {
  if (!field) return defaultReadiness(kind, listen);
  const written = readWritten(ctx, field.value, field.at);
  if (!written) return undefined;
  // Any program can say it is ready: entry apps through pith/guest, binaries by writing
  // "ready\n" to the file descriptor in PITH_CONTROL_FD.
  if (written.kind === "call") return { kind: "call" };
  if (written.kind === "none") return { kind: "none" };
  if (!listen) return undefined;
  const port = resolvePort(ctx, written, listen);
  if (port === undefined) return undefined;
  return written.kind === "http" ? { kind: "http", port, path: written.path } : { kind: "tcp", port };
}

function defaultReadiness(kind: SourceKind, listen: ListenPort[] | undefined): Readiness {
  if (kind === "entry") return { kind: "call" };
  // A program that listens is ready once it accepts connections; one that doesn't can't be probed.
  const first = listen?.[0];
  return first ? { kind: "tcp", port: first.port } : { kind: "none" };
}

function readWritten(ctx: Ctx, node: YNode, at: string): Written | undefined {
  if (isScalar(node) && typeof node.value === "string") {
    if (node.value === "ready()") return { kind: "call" };
    if (node.value === "none") return { kind: "none" };
    const guess = closest(node.value, ["ready()", "none"]);
    ctx.report(node, at, `unknown readiness "${node.value}"`, guess ? `did you mean "${guess}"?` : `use ${FORMS}`);
    return undefined;
  }
  if (!isMap(node)) return expected(ctx, node, at, `one of ${FORMS}`);
  const fields = readMap(ctx, node, at, ["http", "tcp"]);
  if (!fields) return undefined;
  const probes = [...fields.values()];
  if (probes.length !== 1) {
    const message = probes.length === 0 ? "no probe given" : "give only one probe, http or tcp";
    ctx.report(node, at, message, `use ${FORMS}`);
    return undefined;
  }
  return readProbe(ctx, probes[0]!);
}

function readProbe(ctx: Ctx, { key, keyNode, value, at }: Entry): Written | undefined {
  const kind = key === "http" ? "http" : "tcp";
  // `tcp:` with nothing after it means "all defaults", like `tcp: {}`.
  const fields = isNothing(value) ? new Map<string, Entry>() : readMap(ctx, value, at, kind === "http" ? ["path", "port"] : ["port"]);
  if (!fields) return undefined;
  const pathEntry = fields.get("path");
  const path = pathEntry ? readProbePath(ctx, pathEntry) : "/";
  const portEntry = fields.get("port");
  const port = portEntry ? readPort(ctx, portEntry.value, portEntry.at) : undefined;
  if (path === undefined || (portEntry && port === undefined)) return undefined;
  return { kind, path, port, node: keyNode, portNode: portEntry?.value, at };
}

function readProbePath(ctx: Ctx, { value, at }: Entry): string | undefined {
  const path = readString(ctx, value, at, "a URL path");
  if (path === undefined) return undefined;
  if (!path.startsWith("/") || /\s/.test(path)) {
    ctx.report(value, at, `"${path}" is not a URL path`, `use a path starting with "/" and without spaces, e.g. /healthz`);
    return undefined;
  }
  return path;
}

function resolvePort(ctx: Ctx, probe: Extract<Written, { kind: "http" | "tcp" }>, listen: ListenPort[]): number | undefined {
  const ports = listen.map((l) => l.port);
  if (probe.port === undefined) {
    if (ports[0] !== undefined) return ports[0];
    ctx.report(probe.node, probe.at, `a ${probe.kind} probe needs a port, but listen is empty`,
      "add the port your app serves on to listen, e.g. listen: [8080]");
    return undefined;
  }
  if (ports.includes(probe.port)) return probe.port;
  const others = ports.length ? `, or probe one of ${ports.join(", ")}` : "";
  ctx.report(probe.portNode, `${probe.at}.port`, `port ${probe.port} is not in listen`, `add ${probe.port} to listen${others}`);
  return undefined;
}
