import { build } from "esbuild";
import { join } from "node:path";
import { userError } from "../shared/errors.ts";
import { pithRoot } from "../shared/paths.ts";

/** The guest library, resolved for apps that `import ... from "pith/guest"`. */
export const guestLibraryPath = (): string => join(pithRoot(), "src", "guest", "index.ts");

/**
 * Bundles a TypeScript or JavaScript entry and everything it imports into one ES module, so the
 * image carries one file instead of a node_modules tree. Deterministic: no timestamps, no
 * absolute paths in the output, so the same sources give the same bytes.
 */
export async function bundleApp(entry: string, appDir: string): Promise<Uint8Array> {
  const result = await build({
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
  return output.contents;
}
