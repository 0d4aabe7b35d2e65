import { createHash } from "node:crypto";
import { build } from "esbuild";
import { join } from "node:path";
import { pithRoot } from "../shared/paths.ts";

/** The web GUI's client code, bundled in memory: no build step, nothing written to disk. */
export interface WebAsset {
  body: string;
  contentType: string;
  /** A strong ETag: the content's hash, so browsers revalidate cheaply. */
  etag: string;
}

export interface WebBundle {
  /** By file name under /ui/: app.js, app.css. */
  assets: Map<string, WebAsset>;
}

export const WEB_APP_DIR = (): string => join(pithRoot(), "src/web/app");

let cached: Promise<WebBundle> | undefined;

/**
 * Bundles src/web/app/main.ts (preact + htm, the yaml parser, and the CSS it imports) with
 * esbuild, once per process. A failed build is not cached, so the next request tries again.
 */
export function webBundle(): Promise<WebBundle> {
  if (!cached) {
    cached = buildWebBundle();
    cached.catch(() => (cached = undefined));
  }
  return cached;
}

export async function buildWebBundle(): Promise<WebBundle> {
  const result = await build({
    entryPoints: { app: join(WEB_APP_DIR(), "main.ts") },
    bundle: true,
    write: false,
    outdir: "/ui",
    format: "esm",
    platform: "browser",
    target: ["es2022", "chrome110", "firefox110", "safari16"],
    minify: true,
    legalComments: "none",
    charset: "utf8",
    define: { "process.env.NODE_ENV": '"production"' },
    logLevel: "silent",
  });
  const assets = new Map<string, WebAsset>();
  for (const file of result.outputFiles) {
    const name = file.path.split("/").pop()!;
    const contentType = name.endsWith(".css") ? "text/css; charset=utf-8" : "text/javascript; charset=utf-8";
    assets.set(name, { body: file.text, contentType, etag: `"${createHash("sha256").update(file.contents).digest("hex").slice(0, 32)}"` });
  }
  if (!assets.has("app.js")) throw new Error("the web GUI bundle has no app.js");
  return { assets };
}
