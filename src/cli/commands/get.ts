import type { Command } from "commander";
import { stringify } from "yaml";
import type { ResourceList, ResourceOf } from "../../client/types.ts";
import { shortDigest } from "../../image/image.ts";
import type { Image, Machine, PithEvent, PithNode, Secret, Service, Volume } from "../../model/kinds.ts";
import { IMAGE_NAME_LABEL } from "../../model/labels.ts";
import { PLURALS, type Kind, type Resource } from "../../model/resource.ts";
import { desiredMachines } from "../../model/service-rules.ts";
import { userError } from "../../shared/errors.ts";
import { clientFor } from "../client-config.ts";
import { kindWord, parseKindAndName } from "../kinds.ts";
import { formatBytes, table } from "../output.ts";

interface GetOptions {
  output?: string;
  watch?: boolean;
  selector?: string;
}

const FORMATS = ["wide", "json", "yaml"] as const;

export function registerGet(program: Command): void {
  program
    .command("get")
    .description("list objects of a kind (services, machines, nodes, images, events), or show one")
    .argument("<kind>", "service (svc), machine (m), node (no), image (img), event (ev); or KIND/NAME")
    .argument("[name]", "only this object")
    .option("-o, --output <format>", `output format: ${FORMATS.join(", ")} (default: a table)`)
    .option("-l, --selector <labels>", "only objects with these labels, e.g. pith.dev/service=web")
    .option("-w, --watch", "after the list, print a line for every change until Ctrl-C")
    .action(async (kindArg: string, nameArg: string | undefined, options: GetOptions, command: Command) => {
      const { kind, name } = parseKindAndName(kindArg, nameArg);
      const output = options.output;
      if (output !== undefined && !(FORMATS as readonly string[]).includes(output)) {
        throw userError("BAD_FLAG", `-o ${output}: unknown output format`, `use one of: ${FORMATS.join(", ")}`);
      }
      const client = clientFor(command);
      const labels = options.selector ? parseSelector(options.selector) : undefined;

      let items: Resource[];
      let list: ResourceList<ResourceOf<Kind>> | undefined;
      if (name !== undefined) {
        const object = await client.get(kind, name);
        if (!object) throw notFound(kind, name);
        items = [object];
      } else {
        list = await client.list(kind, labels ? { labels } : {});
        items = list.items;
      }

      if (output === "json" || output === "yaml") {
        if (options.watch) items.forEach((o) => process.stdout.write(serialise(o, output, true)));
        else process.stdout.write(serialise(list ?? items[0], output));
      } else if (items.length === 0 && !options.watch) {
        process.stderr.write(`no ${PLURALS[kind]} found\n`);
        return;
      }
      const wide = output === "wide";
      const printer = printerFor(kind, wide);
      let widths: number[] = [];
      if (output !== "json" && output !== "yaml") {
        const rows = items.map((o) => printer.row(o));
        process.stdout.write(table(printer.headers, rows));
        widths = columnWidths(printer.headers, rows);
      }
      if (!options.watch) return;

      const controller = new AbortController();
      process.once("SIGINT", () => controller.abort());
      const from = list?.metadata.resourceVersion ?? items[0]?.metadata.resourceVersion;
      await client.watch(
        kind,
        {
          ...(from !== undefined ? { resourceVersion: from } : {}),
          signal: controller.signal,
          ...(labels ? { labels } : {}),
          onRelist: (current) => {
            const rows = current.filter((o) => name === undefined || o.metadata.name === name).map((o) => printer.row(o));
            if (output === "json" || output === "yaml") current.forEach((o) => process.stdout.write(serialise(o, output, true)));
            else process.stdout.write(table(printer.headers, rows));
          },
          onDisconnect: (error, retryInMs) => process.stderr.write(`watch interrupted (${error.message.split("\n")[0]}); reconnecting in ${(retryInMs / 1000).toFixed(1)}s\n`),
        },
        (event) => {
          if (name !== undefined && event.object.metadata.name !== name) return;
          if (output === "json" || output === "yaml") {
            process.stdout.write(serialise(event.object, output, true));
            return;
          }
          const row = alignRow(printer.row(event.object), widths);
          process.stdout.write(`${row}${event.type === "DELETED" ? "   (deleted)" : ""}\n`);
        },
      );
    });
}

export const notFound = (kind: Kind, name: string) =>
  userError("NOT_FOUND", `${kindWord(kind)} ${name} not found`, `see \`pith get ${PLURALS[kind]}\` for what exists`);

/** `-o json|yaml`: pretty JSON, or a YAML document; in a stream, JSON one per line and YAML with `---`. */
export function serialise(value: unknown, format: "json" | "yaml", streaming = false): string {
  if (format === "json") return streaming ? `${JSON.stringify(value)}\n` : `${JSON.stringify(value, null, 2)}\n`;
  return `${streaming ? "---\n" : ""}${stringify(value)}`;
}

/** `a=b,c=d` into labels. */
export function parseSelector(selector: string): Record<string, string> {
  const labels: Record<string, string> = {};
  for (const part of selector.split(",").map((p) => p.trim()).filter(Boolean)) {
    const eq = part.indexOf("=");
    if (eq <= 0) throw userError("BAD_FLAG", `-l ${selector}: "${part}" is not KEY=VALUE`, "e.g. -l pith.dev/service=web");
    labels[part.slice(0, eq).trim()] = part.slice(eq + 1).replace(/^=/, "").trim();
  }
  return labels;
}

// ---- tables ---------------------------------------------------------------------------------

export interface Printer {
  headers: string[];
  row(object: Resource): string[];
}

/** Columns for each kind; `wide` adds more. Every row has exactly as many cells as headers. */
export function printerFor(kind: Kind, wide: boolean, now: () => number = Date.now): Printer {
  const age = (iso: string | undefined) => formatAge(iso, now());
  switch (kind) {
    case "Service":
      return printer<Service>(
        ["NAME", "IMAGE", "READY", "STATUS", "AGE", ...(wide ? ["HOSTS", "ENV"] : [])],
        (s) => [
          s.metadata.name,
          imageColumn(s),
          `${s.status?.ready ?? 0}/${desiredMachines(s)}`,
          serviceState(s),
          age(s.metadata.createdAt),
          ...(wide ? [s.spec.hosts?.join(",") || "-", String(Object.keys(s.spec.env ?? {}).length)] : []),
        ],
      );
    case "Machine":
      return printer<Machine>(
        ["NAME", "SERVICE", "PHASE", "NODE", "READY-IN", "AGE", ...(wide ? ["PID", "ADDRESS", "ACCEL", "FROM", "REASON"] : [])],
        (m) => [
          m.metadata.name,
          m.spec.service ?? "-",
          m.status?.phase ?? "pending",
          m.status?.node ?? m.spec.node ?? "-",
          m.status?.timings?.readyMs !== undefined ? formatDuration(m.status.timings.readyMs) : "-",
          age(m.metadata.createdAt),
          ...(wide
            ? [
                m.status?.pid !== undefined ? String(m.status.pid) : "-",
                m.status?.addresses?.map((a) => a.url).join(",") || "-",
                m.status?.accelerator ?? "-",
                m.status?.startedFrom ?? "-",
                m.status?.reason ?? "-",
              ]
            : []),
        ],
      );
    case "Node":
      return printer<PithNode>(["NAME", "READY", "ADDRESS", "ACCEL", "MACHINES", "MEMORY", "HEARTBEAT", ...(wide ? ["VCPUS", "VERSION", "AGE", "JAIL"] : [])], (n) => [
        n.metadata.name,
        nodeState(n),
        n.spec.address ?? "loopback",
        n.spec.accelerator,
        String(n.status?.allocated?.machines ?? 0),
        nodeMemory(n),
        n.status?.heartbeatAt ? age(n.status.heartbeatAt) : "-",
        ...(wide ? [`${n.status?.allocated?.vcpus ?? 0}/${n.spec.capacity.vcpus}`, n.status?.agentVersion ?? "-", age(n.metadata.createdAt), jailSummary(n.status?.jailMissing)] : []),
      ]);
    case "Image":
      return printer<Image>(["NAME", "DIGEST", "RUNTIME", "SIZE", "LISTEN", ...(wide ? ["EGRESS", "MEMORY", "VCPUS", "AGE"] : [])], (i) => [
        i.metadata.labels[IMAGE_NAME_LABEL] ?? i.metadata.name,
        shortDigest(i.spec.digest),
        i.spec.runtime,
        formatBytes(i.spec.storedBytes),
        i.spec.listen.join(",") || "-",
        ...(wide ? [i.spec.egress.join(",") || "-", `${i.spec.memoryMiB} MiB`, String(i.spec.vcpus), age(i.metadata.createdAt)] : []),
      ]);
    case "Event":
      return printer<PithEvent>(["AGE", "TYPE", "REASON", "OBJECT", "MESSAGE"], (e) => [
        age(e.spec.at ?? e.metadata.createdAt),
        e.spec.type,
        e.spec.reason,
        `${e.spec.involved.kind.toLowerCase()}/${e.spec.involved.name}`,
        e.spec.message,
      ]);
    case "Secret":
      // Keys and their hashes are all the API shows of a Secret.
      return printer<Secret>(["NAME", "KEYS", "AGE", ...(wide ? ["HASHES"] : [])], (s) => [
        s.metadata.name,
        Object.keys(s.spec.keys ?? {}).join(",") || "-",
        age(s.metadata.createdAt),
        ...(wide ? [Object.entries(s.spec.keys ?? {}).map(([k, v]) => `${k}=${v.hash}`).join(",") || "-"] : []),
      ]);
    case "Volume":
      return printer<Volume>(["NAME", "SIZE", "NODE", "ATTACHED-TO", "AGE", ...(wide ? ["MESSAGE"] : [])], (v) => [
        v.metadata.name,
        `${v.spec.sizeMiB} MiB`,
        v.status?.node ?? v.spec.node ?? "-",
        v.status?.attachedTo ?? "-",
        age(v.metadata.createdAt),
        ...(wide ? [v.status?.message ?? "-"] : []),
      ]);
  }
}

// The API hands back objects of the kind asked for; the cast picks that kind's fields.
const printer = <R extends Resource>(headers: string[], row: (object: R) => string[]): Printer => ({ headers, row: (o) => row(o as R) });

/** One word for a service's state, for STATUS. */
export function serviceState(s: Service): string {
  const status = s.status ?? {};
  if (status.crashLoop) return "CrashLoopBackOff";
  if (desiredMachines(s) === 0) return "ScaledToZero";
  if (status.observedGeneration === undefined) return "Pending";
  if (status.observedGeneration < s.metadata.generation) return "Updating";
  return (status.ready ?? 0) >= desiredMachines(s) ? "Running" : "Starting";
}

function imageColumn(s: Service): string {
  const image = s.status?.imageDigest ?? s.spec.image;
  return image.startsWith("sha256:") ? shortDigest(image) : image;
}

/** How long ago, like kubectl's AGE: 45s, 3m, 2h, 5d, 2y. */
export function formatAge(iso: string | undefined, now: number = Date.now()): string {
  const at = iso ? Date.parse(iso) : NaN;
  if (Number.isNaN(at)) return "<unknown>";
  const seconds = Math.max(0, Math.floor((now - at) / 1000));
  if (seconds < 60) return `${seconds}s`;
  const minutes = Math.floor(seconds / 60);
  if (minutes < 60) return `${minutes}m`;
  const hours = Math.floor(minutes / 60);
  if (hours < 48) return `${hours}h`;
  const days = Math.floor(hours / 24);
  if (days < 730) return `${days}d`;
  return `${Math.floor(days / 365)}y`;
}

/** A short duration: 850ms, 1.2s, 42s, 3m10s. */
export function formatDuration(ms: number): string {
  if (ms < 1000) return `${Math.round(ms)}ms`;
  if (ms < 10_000) return `${(ms / 1000).toFixed(1)}s`;
  if (ms < 60_000) return `${Math.round(ms / 1000)}s`;
  const m = Math.floor(ms / 60_000);
  return `${m}m${String(Math.round((ms - m * 60_000) / 1000)).padStart(2, "0")}s`;
}

function columnWidths(headers: string[], rows: string[][]): number[] {
  return headers.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)));
}

/** A row padded like the table printed before it, so watch output lines up under its headers. */
export function alignRow(cells: string[], widths: number[]): string {
  return cells.map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i] ?? c.length))).join("   ").trimEnd();
}

/** Memory placed machines claim of the node's capacity, and what its warm machines hold besides. */
function nodeMemory(n: PithNode): string {
  const used = `${n.status?.allocated?.memoryMiB ?? 0}/${n.spec.capacity.memoryMiB} MiB`;
  return n.status?.warmMemoryMiB ? `${used} +${n.status.warmMemoryMiB} warm` : used;
}

/** "full", or which parts of the jail the node's machines go without (`describe node` says why). */
export function jailSummary(missing: string[] | undefined): string {
  if (missing === undefined) return "-";
  if (missing.length === 0) return "full";
  return `without ${missing.map((m) => m.split(":")[0]).join(",")}`;
}

/** kubectl's way: Ready, NotReady or Unknown, then what an operator set (cordoned, draining). */
export function nodeState(n: PithNode): string {
  const ready = n.status?.ready === true ? "Ready" : n.status?.ready === false ? "NotReady" : "Unknown";
  return [ready, ...(n.spec.unschedulable ? ["SchedulingDisabled"] : []), ...(n.spec.drain ? ["Draining"] : [])].join(",");
}
