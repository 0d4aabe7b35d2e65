import { build, type Plugin } from "esbuild";
import { join } from "node:path";
import { userError } from "../shared/errors.ts";
import { pithRoot } from "../shared/paths.ts";
import { findPackageDir, isNativePackage, packageNameOf, type ExternalPackage } from "./node-packages.ts";

/** The guest library, resolved for apps that `import ... from "pith/guest"`. */
export const guestLibraryPath = (): string => join(pithRoot(), "src", "guest", "index.ts");

/** CommonJS when the app allows it (V8 caches the compiled code of scripts only), else an ES module. */
export type BundleFormat = "cjs" | "esm";

export interface AppBundle {
  code: Uint8Array;
  format: BundleFormat;
  /** Packages left out of the bundle, imported by name at run time: they go in node_modules. */
  externals: ExternalPackage[];
}

/**
 * Bundles a TypeScript or JavaScript entry and everything it imports into one file, so the image
 * carries one file instead of a node_modules tree. Deterministic: no timestamps, no absolute
 * paths in the output, so the same sources give the same bytes. Packages that cannot be bundled
 * stay external: those `declared` (node.external in pith.yaml) and those with a native addon,
 * whose `.node` file must be loaded from disk.
 *
 * The bundle is CommonJS when nothing in the app needs an ES module: node then starts it without
 * its ES module loader (measured in bench/boot/node-start.ts) and a V8 code cache can be made for
 * it. It stays an ES module when the app awaits at top level, reads `import.meta` beyond `.url`,
 * or imports a declared external package (which may be ESM-only: require() could not load it).
 */
export async function bundleApp(entry: string, appDir: string, declared: readonly string[] = []): Promise<AppBundle> {
  const cjs = await esbuildBundle(entry, appDir, declared, "cjs").catch((e: unknown) => {
    if (e instanceof NeedsModuleFormat) return undefined;
    throw e;
  });
  if (cjs && cjs.externals.every((p) => isNativePackage(p.dir))) return cjs;
  return esbuildBundle(entry, appDir, declared, "esm");
}

/** esbuild could bundle the app only as an ES module. */
class NeedsModuleFormat extends Error {}

type EsbuildFailure = { errors?: { text: string; location?: { file: string; line: number; column: number } | null }[] };

async function esbuildBundle(entry: string, appDir: string, declared: readonly string[], format: BundleFormat): Promise<AppBundle> {
  const externals = new Map<string, ExternalPackage>();
  const result = await build({
    plugins: [externalPackages(declared, externals)],
    entryPoints: [entry],
    absWorkingDir: appDir,
    bundle: true,
    write: false,
    platform: "node",
    format,
    target: "node20",
    alias: { "pith/guest": guestLibraryPath() },
    banner: {
      js: format === "esm"
        // Bundled CommonJS dependencies may still call require() for Node's built-ins.
        ? 'import { createRequire as __pithCreateRequire } from "node:module"; const require = __pithCreateRequire(import.meta.url);'
        : 'const __pithImportMetaUrl = require("node:url").pathToFileURL(__filename).href;',
    },
    ...(format === "cjs" ? { define: { "import.meta.url": "__pithImportMetaUrl" } } : {}),
    legalComments: "none",
    logLevel: "silent",
    sourcemap: false,
  }).catch((e: EsbuildFailure) => {
    if (format === "cjs" && (e.errors ?? []).some((m) => /top-level await/i.test(m.text))) throw new NeedsModuleFormat();
    const details = (e.errors ?? []).map((m) => (m.location ? `${m.location.file}:${m.location.line}:${m.location.column}: ${m.text}` : m.text)).join("\n");
    throw userError("BUNDLE_FAILED", `cannot bundle ${entry}:\n${details || String(e)}`, "fix the error above; the app must build with esbuild for node20");
  });
  // esbuild empties import.meta in CommonJS and only warns: such an app keeps its module format.
  if (format === "cjs" && result.warnings.some((w) => w.text.includes("import.meta"))) throw new NeedsModuleFormat();
  const output = result.outputFiles[0];
  if (!output) throw userError("BUNDLE_FAILED", `esbuild produced nothing for ${entry}`);
  return { code: output.contents, format, externals: [...externals.values()].sort((a, b) => (a.name < b.name ? -1 : 1)) };
}

/** Marks imports of packages that cannot be bundled as external, and records which they are. */
function externalPackages(declared: readonly string[], found: Map<string, ExternalPackage>): Plugin {
  return {
    name: "pith-external-packages",
    setup(build) {
      build.onResolve({ filter: /^[^./]/ }, (args) => {
        const name = packageNameOf(args.path);
        if (!name || args.path === "pith/guest") return undefined;
        const dir = findPackageDir(name, args.resolveDir);
        if (!dir || !(declared.includes(name) || isNativePackage(dir))) return undefined;
        const seen = found.get(name);
        if (seen && seen.dir !== dir) {
          throw userError("NODE_PACKAGE_CONFLICT", `two copies of ${name} cannot be external: ${seen.dir} and ${dir}`,
            "install one version of it (npm dedupe)");
        }
        found.set(name, { name, dir });
        return { path: args.path, external: true };
      });
    },
  };
}
