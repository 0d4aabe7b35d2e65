import type { Command } from "commander";
import { QemuHypervisor } from "../../hypervisor/qemu/qemu-hypervisor.ts";
import { parseImageReference } from "../../image/image-reference.ts";
import { bootFiles } from "../../image/image-store.ts";
import { shortDigest } from "../../image/image.ts";
import { userError } from "../../shared/errors.ts";
import { MachineStarter } from "../../snapshot/machine-starter.ts";
import { SnapshotStore, snapshotLimitBytes, type StoredSnapshot } from "../../snapshot/snapshot-store.ts";
import { imageFromArgument } from "../image-argument.ts";
import { formatBytes, table } from "../output.ts";
import { parseEnv } from "./run.ts";

export function registerSnapshots(program: Command): void {
  const snapshots = program
    .command("snapshots")
    .description("list, make and remove snapshots of ready machines (kept under the image store, PITH_SNAPSHOT_LIMIT bytes in all)");

  snapshots
    .command("ls", { isDefault: true })
    .description("list the snapshots on this host, most recently used first")
    .option("-o, --output <format>", "table or json", "table")
    .action(async (options: { output: string }) => {
      const all = await new SnapshotStore().list();
      if (options.output === "json") {
        process.stdout.write(JSON.stringify(all.map((s) => ({ ...s.record, lastUsedAt: s.lastUsedAt.toISOString() })), null, 2) + "\n");
        return;
      }
      const rows = all.map(({ record, lastUsedAt }) => [
        record.key.slice(0, 12),
        record.image.name,
        shortDigest(record.image.digest),
        formatBytes(record.bytes),
        `${record.shape.memoryMiB}M/${record.shape.vcpus}`,
        record.createdAt.replace(/\.\d+Z$/, "Z"),
        lastUsedAt.toISOString().replace(/\.\d+Z$/, "Z"),
      ]);
      const total = all.reduce((sum, s) => sum + s.record.bytes, 0);
      process.stdout.write(table(["KEY", "IMAGE", "DIGEST", "SIZE", "SHAPE", "CREATED", "LAST USED"], rows));
      process.stdout.write(`${all.length} snapshot(s), ${formatBytes(total)} of ${formatBytes(snapshotLimitBytes())} (PITH_SNAPSHOT_LIMIT)\n`);
    });

  snapshots
    .command("create")
    .description("boot an image privately, warm it up and save its snapshot now, ahead of the first start")
    .argument("<app-or-image>", "an app directory (built first, cached) or an image name/digest")
    .option("-e, --env <KEY=VALUE>", "the env the machines will get (part of the snapshot's key; repeatable)", collect, [])
    .action(async (arg: string, options: { env: string[] }) => {
      const image = await imageFromArgument(arg);
      const env = parseEnv(options.env);
      const starter = new MachineStarter({ hypervisor: new QemuHypervisor({ owner: "run" }) });
      process.stderr.write(`booting ${image.record.name} to snapshot it...\n`);
      const snapshot = await starter.prepare({ id: "unused", image: image.record, ...(await bootFiles(image)), stateDir: "unused", ...(options.env.length ? { env } : {}) }, (n) =>
        process.stderr.write(`${n.message}\n`),
      );
      process.stdout.write(`${snapshot.record.key.slice(0, 12)} ${formatBytes(snapshot.record.bytes)}\n`);
    });

  snapshots
    .command("rm")
    .description("remove snapshots by key (or a prefix of it) or by image name/digest")
    .argument("<key-or-image...>")
    .action(async (refs: string[]) => {
      const store = new SnapshotStore();
      const all = await store.list();
      const chosen = new Set<StoredSnapshot>();
      for (const ref of refs) {
        // A key (or prefix) is hex, so the image reference grammar covers every accepted form.
        parseImageReference(ref);
        const matches = all.filter((s) => s.record.key.startsWith(ref) || s.record.image.name === ref || s.record.image.digest.replace(/^sha256:/, "").startsWith(ref.replace(/^sha256:/, "")));
        if (matches.length === 0) throw userError("SNAPSHOT_NOT_FOUND", `no snapshot matches "${ref}"`, "see `pith snapshots ls`");
        for (const m of matches) chosen.add(m);
      }
      for (const snapshot of chosen) {
        await store.remove(snapshot);
        process.stdout.write(`removed ${snapshot.record.key.slice(0, 12)} (${snapshot.record.image.name}, ${formatBytes(snapshot.record.bytes)})\n`);
      }
    });
}

const collect = (value: string, previous: string[]): string[] => [...previous, value];
