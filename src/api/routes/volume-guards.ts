import type { Machine, Volume, VolumeSpec, VolumeStatus } from "../../model/kinds.ts";
import { API_VERSION, type ResourceInput } from "../../model/resource.ts";
import { claimRefusal, deleteRefusal } from "../../model/volume-claim-rules.ts";
import { StoreError, type Store } from "../../store/store.ts";
import { ApiError } from "../api-error.ts";
import { notFound } from "./read-modify-write.ts";

const ATTEMPTS = 5;

/**
 * A Volume's status write, checked against who holds it: the check and the write happen at one
 * revision (a write racing it is a conflict, and the check runs again), so two machines can never
 * both be recorded as attached.
 */
export async function writeVolumeStatus(store: Store, name: string, clientResourceVersion: string | undefined, status: VolumeStatus): Promise<Volume> {
  for (let attempt = 1; ; attempt++) {
    const volume = await store.get<Volume>("Volume", name);
    if (!volume) throw notFound("Volume", name);
    const current = volume.status?.attachedTo;
    const holder = current === undefined ? undefined : await store.get<Machine>("Machine", current);
    const refusal = claimRefusal(volume, status, holder);
    if (refusal) throw new ApiError("Conflict", refusal, "stop that machine first; its replacement attaches the volume once it is gone");
    try {
      return await store.update<Volume>({
        apiVersion: API_VERSION,
        kind: "Volume",
        metadata: { name, labels: volume.metadata.labels, resourceVersion: clientResourceVersion ?? volume.metadata.resourceVersion },
        spec: volume.spec,
        status,
      });
    } catch (error) {
      const retry = error instanceof StoreError && error.code === "Conflict" && clientResourceVersion === undefined && attempt < ATTEMPTS;
      if (!retry) throw error;
    }
  }
}

/** Deletes a Volume only while no machine holds it, at the revision checked. */
export async function deleteVolume(store: Store, name: string, clientResourceVersion: string | undefined): Promise<Volume> {
  const volume = await store.get<Volume>("Volume", name);
  if (!volume) throw notFound("Volume", name);
  const current = volume.status?.attachedTo;
  const refusal = deleteRefusal(volume, current === undefined ? undefined : await store.get<Machine>("Machine", current));
  if (refusal) throw new ApiError("Conflict", `${refusal}: its data would go while in use`, `stop machine ${current} (or scale its service down) first`);
  return store.delete<Volume>("Volume", name, { expectedResourceVersion: clientResourceVersion ?? volume.metadata.resourceVersion });
}

/**
 * A Volume's spec and labels replaced: its size is fixed once made (an ext4 file is not resized
 * under a machine), its node once set (the data is there), and its status goes only through the
 * checked status write, never with a spec.
 */
export async function replaceVolume(store: Store, input: ResourceInput<"Volume", VolumeSpec, VolumeStatus>): Promise<Volume> {
  const volume = await store.get<Volume>("Volume", input.metadata.name);
  if (!volume) throw notFound("Volume", input.metadata.name);
  if (input.spec.sizeMiB !== volume.spec.sizeMiB) {
    throw new ApiError("Conflict", `Volume ${volume.metadata.name} is ${volume.spec.sizeMiB} MiB; a volume's size cannot change`, "make a new volume of the size you need and copy the data");
  }
  if (volume.spec.node !== undefined && input.spec.node !== volume.spec.node) {
    throw new ApiError("Conflict", `Volume ${volume.metadata.name}'s file is on node ${volume.spec.node}; it cannot move`, `keep spec.node: ${volume.spec.node}`);
  }
  const { status: _ignored, ...withoutStatus } = input;
  return store.update<Volume>({ ...withoutStatus, metadata: { ...input.metadata, resourceVersion: input.metadata.resourceVersion ?? volume.metadata.resourceVersion } });
}
