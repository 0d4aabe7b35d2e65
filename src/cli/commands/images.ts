import type { Command } from "commander";
import { listImages } from "../../image/image-store.ts";
import { shortDigest } from "../../image/image.ts";
import { formatBytes, table } from "../output.ts";

export function registerImages(program: Command): void {
  program
    .command("images")
    .description("list the images in the local store")
    .option("-o, --output <format>", "table or json", "table")
    .action(async (options: { output: string }) => {
      const images = await listImages();
      if (options.output === "json") {
        process.stdout.write(JSON.stringify(images.map((i) => ({ ...i.record, storedBytes: i.storedBytes })), null, 2) + "\n");
        return;
      }
      const rows = images.map(({ record, storedBytes }) => [
        record.name,
        shortDigest(record.digest),
        record.runtime,
        formatBytes(storedBytes),
        record.kernel.fragments.join("+"),
        record.capabilities.listen.map((l) => l.port).join(",") || "-",
        record.capabilities.egress.map((e) => `${e.host}:${e.port}`).join(",") || "-",
      ]);
      process.stdout.write(table(["NAME", "DIGEST", "RUNTIME", "SIZE", "KERNEL", "LISTEN", "EGRESS"], rows));
    });
}
