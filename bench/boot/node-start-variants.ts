/**
 * The ways of starting node that bench/boot/node-start.ts compares, on the image as built. Each
 * gives the argv init runs and the files it adds to the image's own.
 */
import { build } from "esbuild";
import type { StoredImage } from "../../src/image/image-store.ts";
import { bundleApp, guestLibraryPath } from "../../src/image/bundle-app.ts";
import { GUEST_APP_MODULE, GUEST_APP_SCRIPT, GUEST_START_SCRIPT } from "../../src/image/guest-paths.ts";
import { GUEST_NODE_PATH } from "../../src/image/node-runtime.ts";
import { GUEST_START_PATHS, nodeStartScript } from "../../src/image/node-start-script.ts";
import { loadAppManifest } from "../../src/manifest/app-manifest.ts";

export interface NodeStartVariant {
  name: string;
  argv: string[];
  files: Map<string, Uint8Array>;
  note: string;
}

const NODE = GUEST_NODE_PATH;
const READY_NOW = "require('fs').writeSync(3, 'ready\\n')";
/** Flags tried on top of Pith's start. */
const FLAG_SETS: Record<string, string[]> = {
  jitless: ["--jitless"],
  single: ["--single-threaded"],
  pool1: ["--v8-pool-size=1"],
  nosparkplug: ["--no-opt", "--no-sparkplug", "--no-maglev"],
  maxlazy: ["--max-lazy"],
  "jitless-single": ["--jitless", "--single-threaded"],
  // A young generation big enough that node's start needs no scavenge.
  semispace: ["--min-semi-space-size=16"],
};

export async function nodeStartVariants(image: StoredImage, appDir: string): Promise<NodeStartVariant[]> {
  const manifest = await loadAppManifest(appDir);
  if (manifest.source.kind !== "entry") throw new Error(`${appDir} is not a Node app`);
  // Today's ES module bundle, as bundle-app.ts wrote it before CommonJS.
  const esm = await build({
    entryPoints: [manifest.source.path], absWorkingDir: appDir, bundle: true, write: false, platform: "node", format: "esm", target: "node20",
    alias: { "pith/guest": guestLibraryPath() }, legalComments: "none", logLevel: "silent",
    banner: { js: 'import { createRequire as __pithCreateRequire } from "node:module"; const require = __pithCreateRequire(import.meta.url);' },
  });
  const esmFiles = new Map<string, Uint8Array>([[GUEST_APP_MODULE, esm.outputFiles[0]!.contents]]);
  const pith = image.record.argv;
  const isCjs = pith.includes(GUEST_START_SCRIPT) || pith.includes(GUEST_APP_SCRIPT);
  const variants: NodeStartVariant[] = [
    { name: "esm", argv: [NODE, GUEST_APP_MODULE], files: esmFiles, note: "before: node /app/main.mjs (ES module bundle)" },
    { name: "pith", argv: pith, files: new Map(), note: `the image as built: ${pith.join(" ")}` },
    { name: "bare", argv: [NODE, "-e", READY_NOW], files: new Map(), note: "node -e 'ready': node's own start, no app" },
  ];
  if (isCjs) {
    variants.push({ name: "cjs", argv: [NODE, GUEST_APP_SCRIPT], files: new Map(), note: "node /app/main.cjs: CommonJS, no code cache" });
    // The guest library's top-level import of node:crypto (used only after a snapshot restore), made lazy.
    const bundle = Buffer.from((await bundleApp(manifest.source.path, appDir, manifest.node.external)).code).toString("utf8");
    const lazy = bundle.replace(/require\("node:crypto"\)/g, 'new Proxy({}, { get: (_, k) => require("node:crypto")[k] })');
    if (lazy !== bundle) variants.push({ name: "cjs-lazycrypto", argv: [NODE, "/app/lazy.cjs"], files: new Map([["/app/lazy.cjs", Buffer.from(lazy)]]), note: "node:crypto not loaded at start" });
    // The start script's own cost: without a cache, and without a cache or node:v8 either.
    const noCache = nodeStartScript({ ...GUEST_START_PATHS, cache: "/pith/no-such-cache" });
    const noV8 = noCache.replace(/v8\.setFlagsFromString\([^)]*\);/g, "").replace('require("node:v8")', "undefined");
    variants.push({ name: "start-nocache", argv: [NODE, "/pith/start-nocache.cjs"], files: new Map([["/pith/start-nocache.cjs", Buffer.from(noCache)]]), note: "the start script, no cache to read" });
    variants.push({ name: "start-nov8", argv: [NODE, "/pith/start-nov8.cjs"], files: new Map([["/pith/start-nov8.cjs", Buffer.from(noV8)]]), note: "the start script, no cache, no node:v8" });
  }
  // Flags on top of the image's own start (with a code cache, V8 refuses it under other flags).
  for (const [name, flags] of Object.entries(FLAG_SETS)) {
    variants.push({ name: `pith-${name}`, argv: [pith[0]!, ...flags, ...pith.slice(1)], files: new Map(), note: flags.join(" ") });
  }
  return variants;
}
