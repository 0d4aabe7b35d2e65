import type { Command } from "commander";
import { buildImage } from "../../image/image-builder.ts";
import { shortDigest } from "../../image/image.ts";
import { loadAppManifest } from "../../manifest/app-manifest.ts";
import { streamProgress } from "../../shared/progress.ts";
import { formatBytes } from "../output.ts";

export function registerBuild(program: Command): void {
  program
    .command("build")
    .description("build an app (a directory with pith.yaml) into a bootable image")
    .argument("[dir]", "the app's directory or its pith.yaml", ".")
    .option("-q, --quiet", "print only the image digest")
    .action(async (dir: string, options: { quiet?: boolean }) => {
      const manifest = await loadAppManifest(dir);
      const image = await buildImage(manifest, streamProgress(`building ${manifest.name}`));
      const { record } = image;
      if (options.quiet) {
        process.stdout.write(`${record.digest}\n`);
        return;
      }
      process.stdout.write(
        `built ${record.name} ${shortDigest(record.digest)}: ${formatBytes(image.storedBytes)} stored, ` +
          `kernel ${record.kernel.fragments.join("+")} (${record.kernel.options} options), ${record.rootfs.files.filter((f) => f.kind === "file").length} files\n` +
          `${record.digest}\n`,
      );
    });
}
