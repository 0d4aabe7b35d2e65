import { existsSync } from "node:fs";
import path from "node:path";
import type { Ctx } from "./context.ts";
import { isScalar } from "yaml";
import { readList, readMap, readString, type Entry } from "./read.ts";
import type { AppManifest, NodeOptions } from "./types.ts";

/** npm's rule for package names (lowercase, URL-safe, optionally scoped), at most 214 characters. */
const PACKAGE_NAME = /^(@[a-z0-9-~][a-z0-9-._~]*\/)?[a-z0-9-~][a-z0-9-._~]*$/;
const MAX_PACKAGE_NAME = 214;

/**
 * `node:` in pith.yaml, for entry apps: `external` names packages to ship as files in
 * node_modules instead of bundling them (packages that read their own files at run time).
 * Packages with native addons are found without being named. `codeCache: true` ships a V8 code
 * cache of the app (off by default: for a small app, loading it costs more than it saves).
 */
export function readNode(ctx: Ctx, { value, at, keyNode }: Entry, source: AppManifest["source"] | undefined): NodeOptions | undefined {
  const fields = readMap(ctx, value, at, ["external", "codeCache"]);
  if (!fields) return undefined;
  if (source?.kind === "binary") {
    ctx.report(keyNode, at, "node: applies to entry apps only", "remove it: a binary app has no Node packages");
    return undefined;
  }
  const cacheField = fields.get("codeCache");
  const codeCache = cacheField ? readBoolean(ctx, cacheField) : false;
  if (codeCache === undefined) return undefined;
  const external = readExternal(ctx, fields.get("external"));
  return external && { external, codeCache };
}

function readBoolean(ctx: Ctx, { value, at }: Entry): boolean | undefined {
  if (isScalar(value) && typeof value.value === "boolean") return value.value;
  ctx.report(value, at, `${at} must be true or false`, "write codeCache: true, or leave it out");
  return undefined;
}

function readExternal(ctx: Ctx, external: Entry | undefined): string[] | undefined {
  if (!external) return [];
  const items = readList(ctx, external.value, external.at, "a list of package names", "write it as a list, e.g. external: [sharp]");
  if (!items) return undefined;
  const names: string[] = [];
  for (const item of items) {
    const name = readString(ctx, item.node, item.at, "a package name");
    if (name === undefined) continue;
    if (name.length > MAX_PACKAGE_NAME || !PACKAGE_NAME.test(name)) {
      ctx.report(item.node, item.at, `"${name}" is not an npm package name`, 'write the name as in package.json, e.g. "sharp" or "@scope/pkg"');
    } else if (names.includes(name)) {
      ctx.report(item.node, item.at, `"${name}" is listed twice`, "remove the duplicate");
    } else if (!installedFrom(ctx.dir, name)) {
      ctx.report(item.node, item.at, `package "${name}" is not installed (no node_modules/${name}/package.json from ${ctx.dir} up)`,
        `install it: npm install ${name}`);
    } else {
      names.push(name);
      continue;
    }
    return undefined;
  }
  return names.sort();
}

/** Node's lookup: node_modules/<name> in the directory and in each of its parents. */
function installedFrom(dir: string, name: string): boolean {
  for (let d = dir; ; d = path.dirname(d)) {
    if (existsSync(path.join(d, "node_modules", name, "package.json"))) return true;
    if (path.dirname(d) === d) return false;
  }
}
