import { canonicalJson } from "../../shared/canonical-json.ts";
import type { Command } from "commander";
import { readFile, stat } from "node:fs/promises";
import { resolve } from "node:path";
import { isApiError } from "../../client/api-error.ts";
import { parseResourceDocuments, type ParseOptions, type ResourceDocument } from "../../client/documents.ts";
import type { PithClient } from "../../client/pith-client.ts";
import type { InputOf } from "../../client/types.ts";
import { buildImage } from "../../image/image-builder.ts";
import { sameDeclaration } from "../../model/declaration.ts";
import { imageObject } from "../../image/image-object.ts";
import { shortDigest } from "../../image/image.ts";
import { API_VERSION, type Kind, type ResourceInput } from "../../model/resource.ts";
import { loadAppManifest } from "../../manifest/app-manifest.ts";
import { isPithError, userError } from "../../shared/errors.ts";
import { streamProgress } from "../../shared/progress.ts";
import { clientFor } from "../client-config.ts";
import { objectRef } from "../kinds.ts";

export type ApplyResult = "created" | "configured" | "unchanged";

export function registerApply(program: Command): void {
  program
    .command("apply")
    .description("create or update objects from a file of YAML or JSON documents")
    .requiredOption("-f, --filename <file>", "the file (- for stdin); a Service may give spec.app (an app directory) to build instead of spec.image")
    .action(async (options: { filename: string }, command: Command) => {
      // Every document is checked before anything is sent: a file with a mistake applies nothing.
      const documents = await readDocuments(options.filename);
      const client = clientFor(command);
      // Builds can take minutes: find out first whether the control plane is there and takes the token.
      const building = documents.find((d) => d.app !== undefined);
      if (building) await client.get(building.input.kind, building.input.metadata.name);
      let failed = 0;
      for (const doc of documents) {
        const ref = objectRef(doc.input.kind, doc.input.metadata.name);
        try {
          const input = doc.app !== undefined ? await withBuiltImage(client, doc.input, doc.app) : doc.input;
          process.stdout.write(`${ref} ${await applyObject(client, input)}\n`);
        } catch (e) {
          if (isApiError(e) && (e.status === 0 || e.status === 401)) throw e; // nothing else will work either
          failed++;
          printDocumentError(ref, e);
        }
      }
      if (failed) process.exitCode = 1;
    });
}

/** Reads `-f FILE` (or stdin for `-`) and checks its documents; see parseResourceDocuments. */
export async function readDocuments(filename: string, options: Omit<ParseOptions, "baseDir"> = {}): Promise<ResourceDocument[]> {
  if (filename === "-") return parseResourceDocuments(await readStdin(), "<stdin>", { ...options, baseDir: process.cwd() });
  const info = await stat(filename).catch(() => undefined);
  if (!info) throw userError("FILE_NOT_FOUND", `${filename} does not exist`, "pass a YAML or JSON file with -f, or - for stdin");
  if (info.isDirectory()) throw userError("FILE_IS_DIRECTORY", `${filename} is a directory`, "pass one file with -f (pith apply -f dir/web.yaml)");
  const text = await readFile(filename, "utf8");
  return parseResourceDocuments(text, filename, { ...options, baseDir: resolve(filename, "..") });
}

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString("utf8");
}

/**
 * Creates the object, or updates it if it exists (from its current resourceVersion; status is
 * left as the server has it). "unchanged" when spec and labels already match. Retries when
 * another writer got in between.
 */
export async function applyObject(client: PithClient, declared: ResourceInput): Promise<ApplyResult> {
  for (let attempt = 1; ; attempt++) {
    const existing = await client.get(declared.kind, declared.metadata.name);
    const input = keepRestart(declared, existing);
    try {
      if (!existing) {
        await client.create(input as InputOf<Kind>); // shape checked by the server (400 with details)
        return "created";
      }
      if (sameDeclaration(existing, input)) return "unchanged";
      const { status: _status, ...update } = input;
      const updated = await client.update({ ...update, metadata: { ...update.metadata, resourceVersion: existing.metadata.resourceVersion } } as InputOf<Kind>);
      // A Secret's values are write-only, so only the server can say whether they changed.
      if (input.kind === "Secret" && updated.metadata.generation === existing.metadata.generation && canonicalJson(updated.metadata.labels) === canonicalJson(existing.metadata.labels)) return "unchanged";
      return "configured";
    } catch (e) {
      const raced = isApiError(e, 409) && (e.code === "Conflict" || (e.code === "AlreadyExists" && !existing));
      if (!raced || attempt >= 3) throw e;
    }
  }
}

/**
 * `pith rollout restart` sets spec.restartedAt, which no file declares: applying the file again
 * keeps it, or every apply after a restart would roll the machines once more.
 */
function keepRestart(input: ResourceInput, existing: { spec: unknown } | undefined): ResourceInput {
  const restartedAt = (existing?.spec as { restartedAt?: unknown } | undefined)?.restartedAt;
  const spec = input.spec as { restartedAt?: unknown } | undefined;
  if (input.kind !== "Service" || restartedAt === undefined || !spec || spec.restartedAt !== undefined) return input;
  return { ...input, spec: { ...spec, restartedAt } };
}

/** Builds a Service's `spec.app`, registers the Image object, and returns the Service running it. */
async function withBuiltImage(client: PithClient, service: ResourceInput, appDir: string): Promise<ResourceInput> {
  const manifest = await loadAppManifest(appDir);
  const image = await buildImage(manifest, streamProgress(`building ${manifest.name}`));
  process.stderr.write(`built ${image.record.name} ${shortDigest(image.record.digest)} from ${appDir}\n`);
  const imageInput = imageObject(image);
  process.stdout.write(`${objectRef("Image", imageInput.metadata.name)} ${await applyObject(client, imageInput)}\n`);
  return { ...service, spec: { image: image.record.digest, ...(service.spec as Record<string, unknown>) } };
}

/** One document's failure, named, with the fix; the others are still applied. */
export function printDocumentError(ref: string, e: unknown): void {
  if (isPithError(e)) {
    process.stderr.write(`error: ${ref}: ${e.message}\n`);
    if (e.hint) process.stderr.write(`  fix: ${e.hint}\n`);
    return;
  }
  process.stderr.write(`error: ${ref}: ${(e as Error)?.message ?? String(e)}\n`);
}
