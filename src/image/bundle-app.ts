import { build, type Plugin } from "esbuild";
import { join } from "node:path";
import { userError } from "../shared/errors.ts";
import { pithRoot } from "../shared/paths.ts";
import { findPackageDir, isNativePackage, packageNameOf, type ExternalPackage } from "./node-packages.ts";

/** The guest library, resolved for apps that `import ... from "pith/guest"`. */
export const guestLibraryPath = (): string => join(pithRoot(), "src", "guest", "index.ts");

export interface AppBundle {
  code: Uint8Array;
  /** Packages left out of the bundle, imported by name at run time: they go in node_modules. */
  externals: ExternalPackage[];
}

/**
 * Bundles a TypeScript or JavaScript entry and everything it imports into one ES module, so the
 * image carries one file instead of a node_modules tree. Deterministic: no timestamps, no
 * absolute paths in the output, so the same sources give the same bytes. Packages that cannot
 * be bundled stay external: those `declared` (node.external in pith.yaml) and those with a native
 * addon, whose `.node` file must be loaded from disk.
 */
export async function bundleApp(entry: string, appDir: string, declared: readonly string[] = []): Promise<AppBundle> {
  const externals = new Map<string, ExternalPackage>();
  const result = await build({
    plugins: [externalPackages(declared, externals)],
    entryPoints: [entry],
    absWorkingDir: appDir,
    bundle: true,
    write: false,
    platform: "node",
    format: "esm",
    target: "node20",
    alias: { "pith/guest": guestLibraryPath() },
    // Bundled CommonJS dependencies may still call require() for Node's built-ins.
    banner: { js: 'import { createRequire as __pithCreateRequire } from "node:module"; const require = __pithCreateRequire(import.meta.url);' },
    legalComments: "none",
    logLevel: "silent",
    sourcemap: false,
  }).catch((e: { errors?: { text: string; location?: { file: string; line: number; column: number } | null }[] }) => {
    const details = (e.errors ?? []).map((m) => (m.location ? `${m.location.file}:${m.location.line}:${m.location.column}: ${m.text}` : m.text)).join("\n");
    throw userError("BUNDLE_FAILED", `cannot bundle ${entry}:\n${details || String(e)}`, "fix the error above; the app must build with esbuild for node20");
  });
  const output = result.outputFiles[0];
  if (!output) throw userError("BUNDLE_FAILED", `esbuild produced nothing for ${entry}`);
  return { code: output.contents, externals: [...externals.values()].sort((a, b) => (a.name < b.name ? -1 : 1)) };
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
