import type { Command } from "commander";
import { resolveImage } from "../../image/image-store.ts";
import { inspectImage } from "../../image/inspect.ts";
import { formatBytes, table } from "../output.ts";

export function registerInspect(program: Command): void {
  program
    .command("inspect")
    .description("show everything an image contains and may do")
    .argument("<image>", "image name, digest or digest prefix")
    .option("--json", "machine-readable output")
    .action(async (ref: string, options: { json?: boolean }) => {
      const info = await inspectImage(await resolveImage(ref));
      if (options.json) {
        process.stdout.write(JSON.stringify(info, null, 2) + "\n");
        return;
      }
      const caps = info.capabilities;
      const out: string[] = [
        `image     ${info.name}  ${info.digest}`,
        `runtime   ${info.runtime}`,
        `size      ${formatBytes(info.size.storedBytes)} stored (unpacked: kernel ${formatBytes(info.size.kernelBytes)}, initramfs ${formatBytes(info.size.rootfsBytes)}` +
          `${info.size.diskBytes ? `, read-only runtime disk ${formatBytes(info.size.diskBytes)}` : ""})`,
        "",
        "capabilities (everything else is denied)",
        `  listen    ${caps.listen.map((l) => `${l.port}/${l.protocol}`).join(", ") || "none: no network device"}`,
        `  egress    ${caps.egress.map((e) => `${e.host}:${e.port}`).join(", ") || "none"}`,
        `  volumes   ${(caps.volumes ?? []).map((v) => `${v.name} at ${v.mount} (${v.sizeMiB} MiB, ext4, one machine at a time)`).join(", ") || "none: no block device for data"}`,
        `  memory    ${caps.memoryMiB} MiB, ${caps.vcpus} vCPU${caps.vcpus > 1 ? "s" : ""}`,
        "",
        `kernel    ${info.kernel.options} options enabled (Linux ${info.kernel.sourceVersion}, config ${info.kernel.configHash.slice(0, 12)})` +
          (info.generic ? `; ${info.generic.kernel} enables ${info.generic.options}` : ""),
        ...info.kernel.fragments.map((f) => `  ${f.name.padEnd(13)} ${f.options.join(" ")}`),
        "",
        `files (${info.files.filter((f) => f.kind === "file").length}; no shell, no coreutils, no package manager)`,
      ];
      process.stdout.write(out.join("\n") + "\n");
      // Files declared in pith.yaml's files: say where in the app they came from.
      const rows = info.files.map((f) => [f.path + (f.kind === "dir" ? "/" : ""), f.kind === "file" ? formatBytes(f.size) : f.kind, f.role,
        f.on === "disk" ? "runtime disk" : "initramfs", f.from ?? ""]);
      process.stdout.write(table(["PATH", "SIZE", "ROLE", "ON", "FROM"], rows).replace(/^/gm, "  "));
    });
}
