import { html } from "htm/preact";
import type { VNode } from "preact";
import { useState } from "preact/hooks";
import { ConfirmDialog, Section, Table } from "../components.ts";
import { time } from "../format.ts";
import { useLive } from "../live.ts";
import { href } from "../router.ts";
import type { Volume } from "../types.ts";
import { useDelete } from "../use-delete.ts";

/**
 * Volumes outlive their machines and their service: deleting a service keeps its data. This page
 * is where an operator sees what is kept, where, and who holds it, and deletes what is no longer
 * wanted (the API refuses while a machine holds it).
 */
export function VolumesPage(): VNode {
  const live = useLive();
  const volumes = live.volumes;
  const [doomed, setDoomed] = useState<string | undefined>(undefined);
  return html`<div class="page">
    <h1 id="page-title" tabindex="-1">Volumes</h1>
    <p class="muted">Writable disks that keep a service's data across its machines. Each is a file on one node and is attached to at most one machine at a time. Deleting a service keeps its volumes; delete them here once the data is no longer wanted.</p>
    <${Section} title="Volumes" id="volumes">
      <${Table}
        caption="Volumes"
        rows=${volumes}
        rowKey=${(v: Volume) => v.metadata.name}
        rowProps=${(v: Volume) => ({ "data-volume": v.metadata.name, "data-held": v.status?.attachedTo ? "true" : "false" })}
        empty="No volumes. A service gets one per machine for each volume its image declares."
        columns=${[
          { label: "Name", render: (v: Volume) => html`<span class="mono">${v.metadata.name}</span>` },
          { label: "Size", render: (v: Volume) => `${v.spec.sizeMiB} MiB`, numeric: true },
          { label: "Node", render: (v: Volume) => v.spec.node ?? v.status?.node ?? html`<span class="muted">not placed yet</span>` },
          { label: "Held by", render: (v: Volume) => holder(v, live.machine(v.status?.attachedTo ?? "") !== undefined) },
          { label: "Created", render: (v: Volume) => time(v.metadata.createdAt) },
          {
            label: "Actions",
            render: (v: Volume) =>
              v.status?.attachedTo
                ? html`<span class="muted small">in use</span>`
                : html`<button type="button" class="button small-button danger" onClick=${() => setDoomed(v.metadata.name)}>Delete…</button>`,
          },
        ]}
      />
    <//>
    ${doomed ? html`<${DeleteVolume} key=${doomed} name=${doomed} onDone=${() => setDoomed(undefined)} />` : null}
  </div>`;
}

function holder(volume: Volume, machineExists: boolean): VNode | string {
  const machine = volume.status?.attachedTo;
  if (!machine) return html`<span class="muted">free</span>`;
  return machineExists ? html`<a href=${href.machine(machine)}>${machine}</a>` : machine;
}

function DeleteVolume({ name, onDone }: { name: string; onDone: () => void }): VNode {
  const { busy, error, confirm } = useDelete(`/api/v1/volumes/${encodeURIComponent(name)}`, onDone);
  return html`<${ConfirmDialog} open=${true} title=${`Delete volume ${name}?`} confirmLabel=${`Delete ${name}`} busy=${busy} error=${error} onConfirm=${confirm} onCancel=${onDone}>
    <p>Its data is removed from its node's disk. This cannot be undone.</p>
  <//>`;
}
