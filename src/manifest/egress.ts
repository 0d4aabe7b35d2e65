import type { Ctx, YNode } from "./context.ts";
import { readList, readString } from "./read.ts";
import type { Parsed } from "./parsed.ts";
import type { EgressRule } from "./types.ts";

/**
 * Egress is an allow-list enforced per connection, so each rule must name exactly one host and
 * one port: ranges and wildcards would silently widen what the app can reach.
 */
export function parseEgress(text: string): Parsed<EgressRule> {
  const fail = (message: string, hint: string): Parsed<EgressRule> => ({ ok: false, message, hint });
  const example = 'write host:port, e.g. "api.example.com:443" or "10.0.0.5:5432"';
  const s = text.trim();

  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(s)) return fail(`"${text}" is a URL, not host:port`, example);
  if (s.includes("*")) return fail(`"${text}" uses a wildcard; wildcards are not allowed`, "list each host exactly, e.g. \"api.example.com:443\"");
  if (s.includes("/")) return fail(`"${text}" looks like a CIDR range; ranges are not allowed`, "list each host exactly, e.g. \"10.0.0.5:5432\"");
  if (s.startsWith("[") || (s.match(/:/g)?.length ?? 0) > 1) {
    return fail(`"${text}" looks like an IPv6 address; only IPv4 addresses and DNS names are supported`, example);
  }

  const colon = s.lastIndexOf(":");
  if (colon < 0) return fail(`"${text}" has no port`, example);
  // DNS is case-insensitive and a trailing dot only marks the name as fully qualified.
  const host = s.slice(0, colon).toLowerCase().replace(/\.$/, "");
  const portText = s.slice(colon + 1);

  if (!/^\d+$/.test(portText)) return fail(`"${text}" has an invalid port "${portText}"`, example);
  const port = Number(portText);
  if (port < 1 || port > 65535) return fail(`port ${port} is out of range (1-65535)`, "use a port between 1 and 65535");

  const hostProblem = checkHost(host);
  if (hostProblem) return fail(`"${text}": ${hostProblem}`, example);
  return { ok: true, value: { host, port } };
}

function checkHost(host: string): string | undefined {
  if (host === "") return "the host is missing";
  // Anything made only of digits and dots is meant as an IPv4 address, never a DNS name.
  if (/^[\d.]+$/.test(host)) {
    const parts = host.split(".");
    const valid = parts.length === 4 && parts.every((p) => /^\d{1,3}$/.test(p) && Number(p) <= 255);
    return valid ? undefined : `"${host}" is not a valid IPv4 address`;
  }
  const labels = host.split(".");
  const labelOk = (l: string) => /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/.test(l);
  if (host.length > 253 || !labels.every(labelOk)) return `"${host}" is not a valid DNS name`;
  return undefined;
}

/** The `egress` field: a list of unique `host:port` strings. */
export function readEgress(ctx: Ctx, node: YNode, at: string): EgressRule[] | undefined {
  const items = readList(ctx, node, at, 'a list of "host:port" strings', 'write it as a list, e.g. egress: ["api.example.com:443"]');
  if (!items) return undefined;
  const rules: EgressRule[] = [];
  const firstLine = new Map<string, number>();
  let ok = true;
  for (const item of items) {
    const text = readString(ctx, item.node, item.at, 'a "host:port" string');
    const parsed = text === undefined ? undefined : parseEgress(text);
    if (!parsed?.ok) {
      if (parsed) ctx.report(item.node, item.at, parsed.message, parsed.hint);
      ok = false;
      continue;
    }
    const key = `${parsed.value.host}:${parsed.value.port}`;
    const seen = firstLine.get(key);
    if (seen !== undefined) {
      ctx.report(item.node, item.at, `${key} is listed twice (first on line ${seen})`, "remove the duplicate");
      ok = false;
      continue;
    }
    firstLine.set(key, ctx.lineOf(item.node));
    rules.push(parsed.value);
  }
  return ok ? rules : undefined;
}
