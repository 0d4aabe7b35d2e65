import { readFile, stat } from "node:fs/promises";
import path from "node:path";
import { isMap, LineCounter, parseDocument } from "yaml";
import { userError } from "../shared/errors.ts";
import { Ctx } from "./context.ts";
import { ManifestError } from "./problems.ts";
import { describe, isNothing } from "./read.ts";
import { reportSyntaxError } from "./syntax.ts";
import type { AppManifest } from "./types.ts";
import { validateManifest } from "./validate.ts";

export type { AppManifest, EgressRule, ListenPort, Protocol, Readiness, VolumeDeclaration } from "./types.ts";
export { ManifestError, formatProblem, type Problem } from "./problems.ts";

export const MANIFEST_NAMES = ["pith.yaml", "pith.yml"] as const;

const STARTER_HINT = "start with at least: name: my-app and entry: src/main.ts (or binary: ./my-program)";

/**
 * Parses and validates a manifest's text. `file` is where it came from: it prefixes every problem
 * and its directory anchors relative paths (which are checked on disk). Throws ManifestError
 * listing every problem found.
 */
export function parseAppManifest(text: string, file: string): AppManifest {
  const lines = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lines, prettyErrors: false });
  const ctx = new Ctx(file, doc, lines);

  // After a syntax error the tree is a guess, so schema problems found in it would mostly be noise.
  if (doc.errors.length > 0) {
    for (const error of doc.errors) reportSyntaxError(ctx, error);
    throw new ManifestError(ctx.problems);
  }
  const root = ctx.deref(doc.contents, "");
  if (isNothing(doc.contents)) {
    ctx.report(undefined, "", "the manifest is empty", STARTER_HINT);
  } else if (root !== undefined && !isMap(root)) {
    ctx.report(root, "", `expected a mapping of fields at the top level, found ${describe(root)}`, STARTER_HINT);
  }
  const manifest = ctx.problems.length === 0 ? validateManifest(ctx, root) : undefined;
  if (!manifest) throw new ManifestError(ctx.problems);
  return manifest;
}

/** Loads the manifest from an app directory (pith.yaml, else pith.yml) or from a file path. */
export async function loadAppManifest(dirOrFile: string): Promise<AppManifest> {
  const file = await findManifest(dirOrFile);
  let text: string;
  try {
    text = await readFile(file, "utf8");
  } catch (e) {
    throw userError("MANIFEST_UNREADABLE", `cannot read ${file}: ${(e as Error).message}`, "check the file's permissions");
  }
  return parseAppManifest(text, file);
}

async function findManifest(dirOrFile: string): Promise<string> {
  const info = await stat(dirOrFile).catch(() => undefined);
  if (!info) {
    throw userError("MANIFEST_NOT_FOUND", `${dirOrFile} does not exist`, "pass the app's directory or its pith.yaml");
  }
  if (!info.isDirectory()) return dirOrFile;
  for (const name of MANIFEST_NAMES) {
    const candidate = path.join(dirOrFile, name);
    if ((await stat(candidate).catch(() => undefined))?.isFile()) return candidate;
  }
  throw userError("MANIFEST_NOT_FOUND", `no pith.yaml found in ${dirOrFile}`,
    `create ${path.join(dirOrFile, "pith.yaml")}; ${STARTER_HINT}`);
}
