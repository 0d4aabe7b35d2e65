import { isMap } from "yaml";
import type { Ctx, YNode } from "./context.ts";
import { checkRange, readInt, readList, readMap, readString, type Item } from "./read.ts";
import { closest } from "./suggest.ts";
import type { ListenPort, Protocol } from "./types.ts";

const PROTOCOLS: readonly Protocol[] = ["http", "tcp"];

/** Ports the app serves on; each item is a bare port or `{ port, protocol }`. */
export function readListen(ctx: Ctx, node: YNode, at: string): ListenPort[] | undefined {
  const items = readList(ctx, node, at, "a list of ports", "write it as a list, e.g. listen: [8080]");
  if (!items) return undefined;
  const result: ListenPort[] = [];
  const firstLine = new Map<number, number>();
  let ok = true;
  for (const item of items) {
    const entry = readListenItem(ctx, item);
    if (!entry) {
      ok = false;
      continue;
    }
    const seen = firstLine.get(entry.port);
    if (seen !== undefined) {
      ctx.report(item.node, item.at, `port ${entry.port} is listed twice (first on line ${seen})`, "remove the duplicate");
      ok = false;
      continue;
    }
    firstLine.set(entry.port, ctx.lineOf(item.node));
    result.push(entry);
  }
  return ok ? result : undefined;
}

function readListenItem(ctx: Ctx, { node, at }: Item): ListenPort | undefined {
  if (!isMap(node)) {
    const port = readPort(ctx, node, at, "a port number or { port, protocol }");
    return port === undefined ? undefined : { port, protocol: "http" };
  }
  const fields = readMap(ctx, node, at, ["port", "protocol"]);
  if (!fields) return undefined;
  const portEntry = fields.get("port");
  if (!portEntry) {
    ctx.report(node, at, "port is missing", "write { port: 8080 } or { port: 8080, protocol: tcp }");
    return undefined;
  }
  const port = readPort(ctx, portEntry.value, portEntry.at);
  const protocolEntry = fields.get("protocol");
  const protocol = protocolEntry ? readProtocol(ctx, protocolEntry.value, protocolEntry.at) : "http";
  return port === undefined || protocol === undefined ? undefined : { port, protocol };
}

export function readPort(ctx: Ctx, node: YNode, at: string, what = "a port number"): number | undefined {
  const port = readInt(ctx, node, at, what);
  return port === undefined ? undefined : checkRange(ctx, node, at, port, { min: 1, max: 65535, label: "port", noun: "a port" });
}

function readProtocol(ctx: Ctx, node: YNode, at: string): Protocol | undefined {
  const text = readString(ctx, node, at, `"http" or "tcp"`);
  if (text === undefined) return undefined;
  const found = PROTOCOLS.find((p) => p === text);
  if (found) return found;
  const guess = closest(text, PROTOCOLS);
  ctx.report(node, at, `unknown protocol "${text}"`, guess ? `did you mean "${guess}"?` : `use "http" or "tcp"`);
  return undefined;
}
