/**
 * Where Pith puts its own things in every image. The rootfs plan writes them; the manifest reader
 * refuses a `files:` destination over any of them, so an app can neither replace Pith's init or
 * config nor hide a file where a mount will cover it.
 */

/** The app's directory and init's working directory for it. */
export const GUEST_APP_DIR = "/app";
/** Where the bundled app goes in a Node image: an ES module, or a CommonJS script when it can be one (see bundle-app.ts). */
export const GUEST_APP_MODULE = "/app/main.mjs";
export const GUEST_APP_SCRIPT = "/app/main.cjs";
/** What node runs for a CommonJS app (node-start-script.ts), and the V8 code cache it loads the app with. */
export const GUEST_START_SCRIPT = "/pith/start.cjs";
export const GUEST_CODE_CACHE = "/pith/main.cjs.v8-cache";
/** Where the runtime disk is mounted in the guest. */
export const RUNTIME_MOUNT = "/runtime";
/** A Node image's external packages: on the runtime disk, reached from the app through this link. */
export const GUEST_NODE_MODULES = "/app/node_modules";
export const RUNTIME_NODE_MODULES = `${RUNTIME_MOUNT}/node_modules`;

/**
 * Trees no declared file may go into: init's own files (/pith), the runtime disk's mount point,
 * and the kernel's filesystems, which init mounts over whatever the image holds there.
 */
export const RESERVED_GUEST_TREES: readonly string[] = ["/pith", RUNTIME_MOUNT, "/dev", "/proc", "/sys", "/tmp"];

/** Why `dest` cannot hold a declared file in an image whose app is `appPath`, or undefined. */
export function reservedDestinationReason(dest: string, appPath: string, runtime: "node" | "native"): string | undefined {
  if (dest === "/init") return "it is Pith's init";
  if (dest === appPath || (runtime === "node" && dest === GUEST_APP_SCRIPT)) return "it is the app itself";
  for (const tree of RESERVED_GUEST_TREES) {
    if (dest === tree || dest.startsWith(`${tree}/`)) return `${tree} is Pith's (${tree === "/pith" ? "init's config" : "a mount point"})`;
  }
  if (runtime === "node" && (dest === GUEST_NODE_MODULES || dest.startsWith(`${GUEST_NODE_MODULES}/`))) {
    return `${GUEST_NODE_MODULES} holds the app's external Node packages`;
  }
  return undefined;
}
