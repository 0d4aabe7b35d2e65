import type { Command } from "commander";
import type { PithClient } from "../../client/pith-client.ts";
import type { PithEvent, Service } from "../../model/kinds.ts";
import { SERVICE_LABEL } from "../../model/labels.ts";
import type { Resource } from "../../model/resource.ts";
import { secretsUsedBy } from "../../model/machine-template.ts";
import { userError } from "../../shared/errors.ts";
import { clientFor } from "../client-config.ts";
import { parseKindAndName } from "../kinds.ts";
import { table } from "../output.ts";
import { formatAge, notFound, printerFor } from "./get.ts";

export function registerDescribe(program: Command): void {
  program
    .command("describe")
    .description("show one object in detail, with its recent events (and a service's machines)")
    .argument("<kind>", "service (svc), machine (m), node (no), image (img), event (ev), secret; or KIND/NAME")
    .argument("[name]", "the object's name")
    .action(async (kindArg: string, nameArg: string | undefined, _options: unknown, command: Command) => {
      const { kind, name } = parseKindAndName(kindArg, nameArg);
      if (name === undefined) throw userError("BAD_ARGUMENTS", "describe needs a name", `e.g. pith describe ${kindArg} web`);
      const client = clientFor(command);
      const object = await client.get(kind, name);
      if (!object) throw notFound(kind, name);
      process.stdout.write(await describeObject(client, object));
    });
}

async function describeObject(client: PithClient, object: Resource): Promise<string> {
  const [events, machines] = await Promise.all([
    client.events(object.kind, object.metadata.name),
    object.kind === "Service" ? client.list("Machine", { labels: { [SERVICE_LABEL]: object.metadata.name } }).then((l) => l.items) : undefined,
  ]);
  const out = [renderObject(object)];
  if (machines) {
    const printer = printerFor("Machine", false);
    out.push(machines.length ? `Machines:\n${indent(table(printer.headers, machines.map((m) => printer.row(m))))}` : "Machines:  <none>\n");
  }
  if (object.kind === "Service" && (object as Service).spec.warm) {
    // The spec says how many each node should keep; the nodes say how many they hold now.
    const held = (await client.list("Node")).items.flatMap((n) => (n.status.warm?.[object.metadata.name] !== undefined ? [`${n.metadata.name} ${n.status.warm[object.metadata.name]}`] : []));
    out.push(`Warm machines:  ${(object as Service).spec.warm} per node wanted; paused now: ${held.join(", ") || "<none>"}\n`);
  }
  if (object.kind === "Secret") {
    // Which services a change to this Secret rolls.
    const users = (await client.list("Service")).items.filter((svc) => secretsUsedBy(svc.spec).includes(object.metadata.name)).map((svc) => `service/${svc.metadata.name}`);
    out.push(`Used by:  ${users.join(", ") || "<none>"}\n`);
  }
  out.push(renderEvents(events));
  return out.join("");
}

/** Metadata, spec and status as aligned, indented `key: value` lines. */
export function renderObject(object: Resource, now: number = Date.now()): string {
  const m = object.metadata;
  const labels = Object.entries(m.labels ?? {}).map(([k, v]) => `${k}=${v}`).join(", ") || "<none>";
  const header: [string, string][] = [
    ["Name", m.name],
    ["Kind", object.kind],
    ["Labels", labels],
    ["Created", `${m.createdAt} (${formatAge(m.createdAt, now)} ago)`],
    ["Updated", `${m.updatedAt} (${formatAge(m.updatedAt, now)} ago)`],
    ["Generation", String(m.generation)],
    ["Resource version", m.resourceVersion],
  ];
  const width = Math.max(...header.map(([k]) => k.length)) + 2;
  const lines = header.map(([k, v]) => `${`${k}:`.padEnd(width)}${v}`);
  for (const [title, value] of [["Spec", object.spec], ["Status", object.status]] as const) {
    const body = renderFields(value, 2);
    lines.push(body.length ? `${title}:` : `${title}:  <none>`, ...body);
  }
  return lines.join("\n") + "\n";
}

/** A value as YAML-like lines: keys aligned per level, scalar lists on one line, `<none>` for empties. */
export function renderFields(value: unknown, depth: number): string[] {
  const pad = " ".repeat(depth);
  if (!isRecord(value)) return value === undefined ? [] : [`${pad}${scalar(value)}`];
  const entries = Object.entries(value).filter(([, v]) => v !== undefined);
  const width = Math.max(0, ...entries.map(([k]) => k.length)) + 2;
  const lines: string[] = [];
  for (const [key, v] of entries) {
    const label = `${pad}${`${key}:`.padEnd(width)}`;
    if (isRecord(v) && Object.keys(v).length) {
      lines.push(`${pad}${key}:`, ...renderFields(v, depth + 2));
    } else if (Array.isArray(v) && v.some((item) => isRecord(item) || Array.isArray(item))) {
      lines.push(`${pad}${key}:`);
      for (const item of v) {
        const itemLines = renderFields(item, depth + 4);
        itemLines.forEach((line, i) => lines.push(i === 0 ? `${pad}  - ${line.slice(depth + 4)}` : line));
      }
    } else {
      lines.push(`${label}${scalar(v)}`.trimEnd());
    }
  }
  return lines;
}

function scalar(v: unknown): string {
  if (Array.isArray(v)) return v.length ? v.map(scalar).join(", ") : "<none>";
  if (isRecord(v)) return "<none>";
  if (v === null || v === "") return "<none>";
  return String(v);
}

export function renderEvents(events: PithEvent[], now: number = Date.now()): string {
  if (!events.length) return "Events:  <none>\n";
  const rows = events.map((e) => [e.spec.type, e.spec.reason, formatAge(e.spec.at ?? e.metadata.createdAt, now), e.spec.message]);
  return `Events:\n${indent(table(["TYPE", "REASON", "AGE", "MESSAGE"], rows))}`;
}

const indent = (text: string): string => text.replace(/^(?=.)/gm, "  ");
const isRecord = (v: unknown): v is Record<string, unknown> => typeof v === "object" && v !== null && !Array.isArray(v);
