import type { Command } from "commander";
import { resolveImage } from "../../image/image-store.ts";
import { pushImage } from "../../registry/push.ts";
import { formatBytes } from "../output.ts";
import { registryArgument } from "../registry-argument.ts";

export function registerPush(program: Command): void {
  program
    .command("push")
    .description("push a stored image to an OCI registry (credentials: $PITH_HOME/registry-auth.json, PITH_REGISTRY_AUTH_FILE or PITH_REGISTRY_AUTH)")
    .argument("<image>", "image name, digest or digest prefix")
    .argument("<reference>", "REGISTRY[:PORT]/REPO[:TAG] (tag default: latest)")
    .option("-q, --quiet", "print only the pinned reference")
    .action(async (imageRef: string, target: string, options: { quiet?: boolean }) => {
      const ref = registryArgument(target);
      const image = await resolveImage(imageRef);
      const log = options.quiet ? () => {} : (line: string) => process.stderr.write(`${line}\n`);
      const result = await pushImage(image, ref, {}, log);
      if (!options.quiet) {
        process.stderr.write(`pushed ${image.record.name} (${image.record.digest}): ${result.uploaded} blobs uploaded (${formatBytes(result.bytes)}), ${result.skipped} already there${result.tag ? `, tagged ${result.tag}` : ""}\n`);
      }
      process.stdout.write(`${result.pinned}\n`);
    });
}
