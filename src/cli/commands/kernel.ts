import type { Command } from "commander";
import { listKernels } from "../../kernel/kernel-cache.ts";
import { pruneKernelCache } from "../../kernel/kernel-cache-prune.ts";
import { ensureKernel } from "../../kernel/kernel-builder.ts";
import { linuxSourceVersion } from "../../kernel/linux-source.ts";
import { COMMON_KERNEL_NEEDS, fragmentsFor, FRAGMENTS, kernelNeedsOf, parseFragmentNames } from "../../kernel/kernel-fragments.ts";
import { loadAppManifest } from "../../manifest/app-manifest.ts";
import { userError } from "../../shared/errors.ts";
import { formatSeconds, streamProgress } from "../../shared/progress.ts";
import { formatBytes, table } from "../output.ts";

export function registerKernel(program: Command): void {
  const kernel = program.command("kernel").description("build and list the specialised kernels images boot");
  kernel
    .command("build")
    .description("build (or find cached) the kernel for an app, or for explicit fragments")
    .argument("[dir]", "an app directory: its declared capabilities choose the fragments")
    .option("-f, --fragments <list>", `comma-separated fragments (${FRAGMENTS.join(", ")})`)
    .action(async (dir: string | undefined, options: { fragments?: string }) => {
      let fragments;
      if (options.fragments) {
        try {
          fragments = parseFragmentNames(options.fragments);
        } catch (e) {
          throw userError("BAD_FRAGMENTS", (e as Error).message, `choose from: ${FRAGMENTS.join(", ")}`);
        }
      } else if (dir) {
        fragments = fragmentsFor(kernelNeedsOf(await loadAppManifest(dir)));
      } else {
        throw userError("NOTHING_TO_BUILD", "give an app directory or --fragments", "e.g. pith kernel build examples/hello-ts");
      }
      const info = await ensureKernel(fragments, streamProgress(`kernel ${fragments.join("+")}`));
      process.stdout.write(`${info.configHash}  ${info.fragments.join("+")}  ${info.options} options  ${formatBytes(info.vmlinuxBytes)}\n`);
    });
  kernel
    .command("prebuild")
    .description("build the kernels most apps need ahead of time (a later build of a new set starts from the nearest of their kept build trees)")
    .action(async () => {
      for (const needs of COMMON_KERNEL_NEEDS) {
        const fragments = fragmentsFor(needs);
        const info = await ensureKernel(fragments, streamProgress(`kernel ${fragments.join("+")}`));
        process.stdout.write(`${info.configHash}  ${info.fragments.join("+")}  ${formatSeconds(info.buildSeconds)}\n`);
      }
    });
  kernel
    .command("ls")
    .description("list cached kernels")
    .option("-o, --output <format>", "table or json", "table")
    .action(async (options: { output: string }) => {
      const kernels = await listKernels();
      if (options.output === "json") {
        process.stdout.write(JSON.stringify(kernels, null, 2) + "\n");
        return;
      }
      const rows = kernels.map((k) => [
        k.configHash.slice(0, 12),
        k.fragments.join("+"),
        String(k.options),
        formatBytes(k.vmlinuxBytes),
        formatSeconds(k.buildSeconds),
        k.compilerCache ? `${k.compilerCache.hits}/${k.compilerCache.compiles}` : "-",
        k.sourceVersion,
      ]);
      process.stdout.write(table(["CONFIG", "FRAGMENTS", "OPTIONS", "SIZE", "BUILD", "FROM CCACHE", "SOURCE"], rows));
    });
  kernel
    .command("prune")
    .description("remove what no build can use again: the extracted source and the kernels of other source versions (Debian's package or Pith's patches changed), and scratch left by killed builds; images keep their own kernels")
    .option("--dry-run", "list what would be removed, remove nothing")
    .action(async (options: { dryRun?: boolean }) => {
      const currentSourceVersion = await linuxSourceVersion();
      const items = await pruneKernelCache({
        currentSourceVersion,
        ...(options.dryRun ? { dryRun: true } : {}),
        onWait: (pid) => process.stderr.write(`waiting for the kernel build in process ${pid} to finish\n`),
      });
      if (items.length === 0) {
        process.stdout.write(`nothing to prune: everything cached is from ${currentSourceVersion}\n`);
        return;
      }
      process.stdout.write(table(["KIND", "WHAT", "SIZE"], items.map((i) => [i.kind, i.name, formatBytes(i.bytes)])));
      const total = formatBytes(items.reduce((sum, i) => sum + i.bytes, 0));
      process.stdout.write(options.dryRun ? `would free ${total} (the current source is ${currentSourceVersion})\n` : `freed ${total}\n`);
    });
}
