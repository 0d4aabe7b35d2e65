import type { Command } from "commander";
import { pullImage } from "../../registry/pull.ts";
import { formatBytes } from "../output.ts";
import { streamProgress } from "../../shared/progress.ts";
import { registryArgument } from "../registry-argument.ts";

export function registerPull(program: Command): void {
  program
    .command("pull")
    .description("pull an image from an OCI registry into the local store, checking every blob's digest")
    .argument("<reference>", "REGISTRY[:PORT]/REPO[:TAG] or REGISTRY[:PORT]/REPO@sha256:<64 hex>")
    .option("-q, --quiet", "print only the image digest")
    .action(async (source: string, options: { quiet?: boolean }) => {
      const ref = registryArgument(source);
      const progress = options.quiet ? undefined : streamProgress("pull", process.stderr, 5);
      const result = await pullImage(ref, {
        setName: true,
        ...(progress ? { onProgress: (received: number, total: number) => progress.update(total ? received / total : 1, `${formatBytes(received)} of ${formatBytes(total)}`) } : {}),
      });
      progress?.done(result.downloaded ? `${formatBytes(result.bytes)} in ${(result.ms / 1000).toFixed(1)} s, every blob verified` : "already stored");
      if (!options.quiet) process.stderr.write(`${result.image.record.name} ${result.image.record.digest} from ${result.pinned}\n`);
      process.stdout.write(`${result.image.record.digest}\n`);
    });
}
