import { readdir, rm } from "node:fs/promises";
import type { PithClient } from "../client/index.ts";
import { apiSource } from "../client/api-source.ts";
import { Informer, untilSynced } from "../client/informer.ts";
import type { Volume } from "../model/kinds.ts";
import { messageOf } from "../shared/errors.ts";
import { VolumeClaims } from "../volume/volume-claims.ts";
import { volumeFilePath, volumesDir } from "../volume/volume-file.ts";

/**
 * Deleting a Volume deletes its data: the node holding its file removes the file once it sees
 * the deletion. The API refuses to delete a Volume a machine holds, and the file goes only if
 * no machine on this host has claimed it and no Volume of that name exists again by then (a new
 * one reuses the name, and attach replaces a file that predates it; see volume-attachments.ts).
 *
 * A file whose Volume is absent when the agent starts is reported, never removed: the deletion
 * happened while the agent was away, or the agent talks to a control plane that never had it,
 * and only the second loses nothing by waiting for an operator.
 */
export class VolumeReclaimer {
  private readonly volumes: Informer<Volume>;

  constructor(
    private readonly client: PithClient,
    private readonly nodeName: string,
    private readonly log: (line: string) => void,
    private readonly claims = new VolumeClaims(),
  ) {
    this.volumes = new Informer(apiSource(client, "Volume"), { onError: (e) => log(`volume cache: ${messageOf(e)}`) });
    this.volumes.addHandler({
      deleted: (volume) => {
        if (onNode(volume) !== nodeName) return;
        this.reclaim(volume.metadata.name).catch((e: unknown) => log(`volume ${volume.metadata.name}: cannot remove its file: ${messageOf(e)}`));
      },
    });
  }

  /** Watches Volumes until `signal` aborts; once listed, reports files no Volume names. Never throws: machines matter more. */
  start(signal: AbortSignal): void {
    const watching = this.volumes.run(signal);
    watching.catch((e: Error) => this.log(`volume watch ended: ${e.message}`));
    untilSynced([this.volumes], watching)
      .then(() => this.reportOrphans())
      .catch((e: unknown) => this.log(`volume files not checked: ${messageOf(e)}`));
  }

  /** Removes a deleted Volume's file; the reason it stays, if it does. */
  async reclaim(name: string): Promise<string | undefined> {
    const path = volumeFilePath(name);
    if (await this.client.get("Volume", name)) return keep(this.log, name, "a Volume of that name exists again");
    const holder = await this.claims.holder(path).catch(() => undefined);
    if (holder) return keep(this.log, name, `machine ${holder} on this host still claims it`);
    await rm(path, { force: true });
    this.log(`volume ${name}: deleted, its file ${path} removed`);
    return undefined;
  }

  private async reportOrphans(): Promise<void> {
    const files = (await readdir(volumesDir()).catch(() => [] as string[])).filter((f) => f.endsWith(".ext4"));
    const orphans = files.map((f) => f.slice(0, -".ext4".length)).filter((name) => !this.volumes.get(name));
    if (orphans.length === 0) return;
    this.log(`volume files without a Volume object: ${orphans.join(", ")} in ${volumesDir()}; kept (remove them by hand if their data is not wanted)`);
  }
}

const onNode = (volume: Volume): string | undefined => volume.spec.node ?? volume.status?.node;

function keep(log: (line: string) => void, name: string, why: string): string {
  log(`volume ${name}: deleted, its file kept: ${why}`);
  return why;
}
