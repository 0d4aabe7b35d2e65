import { rm } from "node:fs/promises";
import type { PithClient } from "../client/index.ts";
import type { VolumeAttachment } from "../hypervisor/hypervisor.ts";
import type { Machine } from "../model/kinds.ts";
import { userError } from "../shared/errors.ts";
import { ensureVolumeFile, volumeFilePath } from "../volume/volume-file.ts";

/**
 * A machine's Volumes, made ready on this node before it starts: each is recorded as attached to
 * the machine (the API refuses while another machine still holds it), and its file is made here
 * on first use. The node's own claims and QEMU's lock then guard the file itself.
 */
export async function attachVolumes(client: PithClient, node: string, machine: Machine, log: (line: string) => void = () => {}): Promise<VolumeAttachment[]> {
  const attachments: VolumeAttachment[] = [];
  for (const { name, volume } of machine.spec.volumes ?? []) {
    const object = await client.get("Volume", volume);
    if (!object) throw userError("VOLUME_NOT_FOUND", `volume ${volume} does not exist`, "its service's controller creates it; was it deleted?");
    await client.updateStatus("Volume", volume, { ...object.status, attachedTo: machine.metadata.name, node }, object.metadata.resourceVersion);
    const path = volumeFilePath(volume);
    // A file this Volume never had belongs to a deleted Volume of the same name (its node was
    // away when it was deleted): another owner's data, never handed to this one.
    if (!object.status.created && (await rm(path).then(() => true, () => false))) log(`volume ${volume}: removed a file left by an earlier Volume of that name`);
    const made = await ensureVolumeFile(path, object.spec.sizeMiB);
    if (made || !object.status.created) {
      const current = await client.get("Volume", volume);
      if (current) await client.updateStatus("Volume", volume, { ...current.status, created: true }, current.metadata.resourceVersion);
    }
    attachments.push({ name, path });
  }
  return attachments;
}

/** After the machine is gone: its Volumes are free for its replacement. */
export async function detachVolumes(client: PithClient, machine: Pick<Machine, "metadata" | "spec">): Promise<void> {
  for (const { volume } of machine.spec.volumes ?? []) {
    const object = await client.get("Volume", volume);
    if (!object || object.status.attachedTo !== machine.metadata.name) continue;
    const { attachedTo: _released, ...rest } = object.status;
    await client.updateStatus("Volume", volume, rest, object.metadata.resourceVersion);
  }
}
