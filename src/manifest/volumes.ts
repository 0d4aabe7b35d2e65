import { isScalar } from "yaml";
import { isVolumeName, isWithin, MAX_VOLUME_MIB, MAX_VOLUMES, MIN_VOLUME_MIB, mountPathProblem, VOLUME_NAME_RULE } from "../model/volume-rules.ts";
import type { Ctx, YNode } from "./context.ts";
import { expected, readList, readMap, readString, type Entry, type Item } from "./read.ts";
import { parseMemoryMiB } from "./sizes.ts";
import type { VolumeDeclaration } from "./types.ts";

const FIELDS = ["name", "mount", "size"] as const;
const EXAMPLE = "volumes: [{ name: data, mount: /data, size: 1G }]";

/** `volumes`: writable ext4 disks the app keeps across machines, each `{ name, mount, size }`. */
export function readVolumes(ctx: Ctx, node: YNode, at: string): VolumeDeclaration[] | undefined {
  const items = readList(ctx, node, at, "a list of volumes", `write it as a list, e.g. ${EXAMPLE}`);
  if (!items) return undefined;
  if (items.length > MAX_VOLUMES) {
    ctx.report(node, at, `${items.length} volumes (at most ${MAX_VOLUMES})`, "keep several directories on one volume");
    return undefined;
  }
  const result: VolumeDeclaration[] = [];
  const names = new Map<string, number>();
  const mounts = new Map<string, number>();
  let ok = true;
  for (const item of items) {
    const volume = readVolume(ctx, item);
    if (!volume) {
      ok = false;
      continue;
    }
    const line = ctx.lineOf(item.node);
    const sameName = names.get(volume.name);
    const overlap = [...mounts].find(([mount]) => isWithin(volume.mount, mount) || isWithin(mount, volume.mount));
    if (sameName !== undefined) {
      ctx.report(item.node, `${item.at}.name`, `volume "${volume.name}" is declared twice (first on line ${sameName})`, "give each volume its own name");
      ok = false;
    } else if (overlap) {
      const [mount, first] = overlap;
      ctx.report(item.node, `${item.at}.mount`, `${volume.mount} overlaps ${mount} (line ${first})`, "mount each volume at a path outside the others");
      ok = false;
    } else {
      names.set(volume.name, line);
      mounts.set(volume.mount, line);
      result.push(volume);
    }
  }
  return ok ? result : undefined;
}

function readVolume(ctx: Ctx, { node, at }: Item): VolumeDeclaration | undefined {
  const fields = readMap(ctx, node, at, FIELDS);
  if (!fields) return undefined;
  const missing = FIELDS.filter((f) => !fields.has(f));
  if (missing.length > 0) {
    ctx.report(node, at, `${missing.join(" and ")} ${missing.length > 1 ? "are" : "is"} missing`, `write it as { name: data, mount: /data, size: 1G }`);
    return undefined;
  }
  const name = readVolumeName(ctx, fields.get("name")!);
  const mount = readMount(ctx, fields.get("mount")!);
  const sizeMiB = readSize(ctx, fields.get("size")!);
  return name === undefined || mount === undefined || sizeMiB === undefined ? undefined : { name, mount, sizeMiB };
}

function readVolumeName(ctx: Ctx, { value, at }: Entry): string | undefined {
  const name = readString(ctx, value, at, 'a name like "data"');
  if (name === undefined || isVolumeName(name)) return name;
  ctx.report(value, at, `"${name}" is not a valid volume name`, `use ${VOLUME_NAME_RULE}`);
  return undefined;
}

function readMount(ctx: Ctx, { value, at }: Entry): string | undefined {
  const mount = readString(ctx, value, at, 'an absolute path like "/data"');
  if (mount === undefined) return undefined;
  const problem = mountPathProblem(mount);
  if (!problem) return mount;
  ctx.report(value, at, problem.message, problem.hint);
  return undefined;
}

function readSize(ctx: Ctx, { value, at }: Entry): number | undefined {
  const what = 'a size like "512M" or "10G"';
  if (!isScalar(value)) return expected(ctx, value, at, what);
  let mib: number;
  if (typeof value.value === "number" && Number.isInteger(value.value)) mib = value.value;
  else if (typeof value.value === "string") {
    const parsed = parseMemoryMiB(value.value);
    if (!parsed.ok) {
      ctx.report(value, at, `"${value.value}" is not a size`, "use a size like 512M or 10G, or a whole number of MiB");
      return undefined;
    }
    mib = parsed.value;
  } else return expected(ctx, value, at, what);
  if (mib >= MIN_VOLUME_MIB && mib <= MAX_VOLUME_MIB) return mib;
  const shown = typeof value.value === "string" ? value.value : `${value.value} MiB`;
  ctx.report(value, at, `${shown} is ${mib < MIN_VOLUME_MIB ? `below the minimum of ${MIN_VOLUME_MIB}M` : "above the maximum of 1024G"}`,
    `use a size between ${MIN_VOLUME_MIB}M and 1024G`);
  return undefined;
}
