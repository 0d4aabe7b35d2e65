import type { Machine, Volume, VolumeStatus } from "./kinds.ts";

/**
 * Never two writers, as the control plane sees it: a Volume's `status.attachedTo` names the one
 * machine holding it, and another may take it only once that machine is gone (deleted, stopped
 * or failed: its VMM has exited). The node enforces the same with its claims and QEMU's lock.
 */
export function stillHolds(holder: Machine | undefined): boolean {
  return holder !== undefined && holder.status?.phase !== "stopped" && holder.status?.phase !== "failed";
}

/** Why `next` may not replace the volume's status, or undefined when it may. */
export function claimRefusal(volume: Volume, next: VolumeStatus, holder: Machine | undefined): string | undefined {
  const current = volume.status?.attachedTo;
  const node = volume.spec.node ?? volume.status?.node;
  if (next.node !== undefined && node !== undefined && next.node !== node) {
    return `Volume ${volume.metadata.name}'s file is on node ${node}; it cannot be attached on node ${next.node}`;
  }
  if (next.attachedTo === undefined || next.attachedTo === current || current === undefined) return undefined;
  if (stillHolds(holder)) {
    return `Volume ${volume.metadata.name} is attached to machine ${current}; a volume has one writer at a time`;
  }
  return undefined;
}

/** Why the volume may not be deleted now, or undefined when it may. */
export function deleteRefusal(volume: Volume, holder: Machine | undefined): string | undefined {
  const current = volume.status?.attachedTo;
  if (current !== undefined && stillHolds(holder)) return `Volume ${volume.metadata.name} is attached to machine ${current}`;
  return undefined;
}
