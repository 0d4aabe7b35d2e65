import { GUEST_APP_DIR, RESERVED_GUEST_TREES } from "../image/guest-paths.ts";

/**
 * What a volume may be, written once: the manifest reader (pith.yaml `volumes:`), the API's
 * Volume schema and the node that makes the file all check these.
 */

/** A volume's name in pith.yaml: a short DNS label, as it becomes part of Volume names. */
export const VOLUME_NAME_PATTERN = "^[a-z0-9]([-a-z0-9]{0,30}[a-z0-9])?$";
export const VOLUME_NAME_RULE = "1-32 lowercase letters, digits and dashes, starting and ending with a letter or digit";
export const isVolumeName = (name: string): boolean => new RegExp(VOLUME_NAME_PATTERN).test(name);

/** ext4 with a journal needs a few MiB for itself; below 16 MiB there is hardly room for data. */
export const MIN_VOLUME_MIB = 16;
/** 1 TiB: the file is sparse, but a bound keeps a typo ("10000G") from promising a disk no node has. */
export const MAX_VOLUME_MIB = 1024 * 1024;
/** Each volume is one virtio-mmio disk, and init names them vdb, vdc...: a handful is plenty. */
export const MAX_VOLUMES = 8;

/**
 * Paths init fills itself or that hold Pith's files in every image: a volume mounted there would
 * hide the kernel's filesystems, the runtime config, the app or its runtime. The app's own other
 * files (its libraries) are checked against the image's file list when it is built.
 */
export const RESERVED_MOUNTS: readonly string[] = [...RESERVED_GUEST_TREES, GUEST_APP_DIR, "/init"];

const MAX_MOUNT_LENGTH = 255;
/** init reads its mounts as space-separated lines: no spaces, line breaks or other surprises. */
const MOUNT_CHARACTERS = /^[A-Za-z0-9._/-]+$/;

/** `a` is `b` or lies beneath it. */
export const isWithin = (a: string, b: string): boolean => a === b || a.startsWith(b === "/" ? "/" : `${b}/`);

/** Why a mount path is refused, with how to fix it; undefined when it is fine. */
export function mountPathProblem(path: string): { message: string; hint: string } | undefined {
  const example = 'use an absolute path of its own, e.g. "/data"';
  if (!path.startsWith("/")) return { message: `"${path}" is not an absolute path`, hint: example };
  if (path.length > MAX_MOUNT_LENGTH) return { message: `the path is longer than ${MAX_MOUNT_LENGTH} characters`, hint: example };
  if (!MOUNT_CHARACTERS.test(path)) return { message: `"${path}" has characters other than letters, digits, ".", "_", "-" and "/"`, hint: example };
  const segments = path.split("/").slice(1);
  if (path === "/") return { message: "a volume cannot be mounted over the root filesystem", hint: example };
  if (segments.some((s) => s === "" || s === "." || s === "..")) {
    return { message: `"${path}" is not in its simplest form (no "//", ".", ".." or trailing "/")`, hint: `write it as "${simplify(path)}"` };
  }
  const reserved = RESERVED_MOUNTS.find((r) => isWithin(path, r));
  if (reserved) return { message: `"${path}" is inside ${reserved}, which Pith's init or the app's own files use`, hint: example };
  return undefined;
}

function simplify(path: string): string {
  const out: string[] = [];
  for (const s of path.split("/")) {
    if (s === "" || s === ".") continue;
    if (s === "..") out.pop();
    else out.push(s);
  }
  return `/${out.join("/")}`;
}

/** The guest device of the Nth volume: after the runtime disk (vda) if the image has one. */
export const volumeDevice = (index: number, hasRuntimeDisk: boolean): string =>
  `vd${String.fromCharCode("a".charCodeAt(0) + index + (hasRuntimeDisk ? 1 : 0))}`;
