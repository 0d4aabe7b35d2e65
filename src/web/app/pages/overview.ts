import { html } from "htm/preact";
import type { VNode } from "preact";
import { Meter, PhaseBadge, Section, Table } from "../components.ts";
import { ago, shortDigest, time } from "../format.ts";
import { useLive, useNow } from "../live.ts";
import { href } from "../router.ts";
import { desiredMachines, MACHINE_PHASES, type Machine, type PithEvent, type PithNode, type Service } from "../types.ts";

export function Overview(): VNode {
  const live = useLive();
  const now = useNow();
  const services = live.services;
  const machines = live.machines;
  const nodes = live.nodes;
  const events = live.events.slice(0, 15);
  const byPhase = new Map(MACHINE_PHASES.map((p) => [p, 0]));
  for (const m of machines) byPhase.set(m.status?.phase ?? "pending", (byPhase.get(m.status?.phase ?? "pending") ?? 0) + 1);
  const readyMachines = byPhase.get("ready") ?? 0;
  // What is placed on each node, from the live machines (the agent's own report lags a heartbeat).
  const use = (n: PithNode) =>
    machines
      .filter((m) => m.spec.node === n.metadata.name && m.spec.desiredState === "running")
      .reduce((a, m) => ({ memoryMiB: a.memoryMiB + m.spec.memoryMiB, vcpus: a.vcpus + m.spec.vcpus, machines: a.machines + 1 }), { memoryMiB: 0, vcpus: 0, machines: 0 });

  return html`<div class="page">
    <h1 id="page-title" tabindex="-1">Overview</h1>
    <ul class="stats" aria-label="Summary">
      <li><span class="stat-value">${services.length}</span> ${services.length === 1 ? "service" : "services"}</li>
      <li><span class="stat-value">${readyMachines}/${machines.length}</span> machines ready</li>
      <li><span class="stat-value">${nodes.filter((n) => n.status?.ready).length}/${nodes.length}</span> nodes ready</li>
      <li><span class="stat-value">${live.images.length}</span> <a href=${href.images}>${live.images.length === 1 ? "image" : "images"}</a></li>
    </ul>

    <${Section} title="Services" id="services">
      <${Table}
        caption="Services with their ready and desired machines"
        rows=${services}
        rowKey=${(s: Service) => s.metadata.name}
        rowProps=${(s: Service) => ({ "data-service": s.metadata.name })}
        empty=${html`No services yet. Open an image on the <a href=${href.images}>Images</a> page to create one.`}
        columns=${[
          { label: "Name", render: (s: Service) => html`<a href=${href.service(s.metadata.name)}>${s.metadata.name}</a>` },
          { label: "Image", render: (s: Service) => html`<span class="mono">${s.spec.image.startsWith("sha256:") ? shortDigest(s.spec.image) : s.spec.image}</span>` },
          { label: "Ready / desired", render: (s: Service) => readyCell(s) },
          { label: "Machines", render: (s: Service) => phaseSummary(live.machinesOf(s.metadata.name)) },
          { label: "Hosts", render: (s: Service) => (s.spec.hosts?.length ? s.spec.hosts.join(", ") : html`<span class="muted">none</span>`) },
        ]}
      />
    <//>

    <${Section} title="Machines by phase" id="machines">
      <ul class="phase-counts" aria-label="Machines by phase">
        ${MACHINE_PHASES.map((p) => html`<li data-phase-count=${p}><${PhaseBadge} phase=${p} /> <span class="count">${byPhase.get(p) ?? 0}</span></li>`)}
      </ul>
      <${Table}
        caption="Machines"
        rows=${machines}
        rowKey=${(m: Machine) => m.metadata.name}
        empty="No machines."
        columns=${[
          { label: "Machine", render: (m: Machine) => html`<a href=${href.machine(m.metadata.name)}>${m.metadata.name}</a>` },
          { label: "Service", render: (m: Machine) => (m.spec.service ? html`<a href=${href.service(m.spec.service)}>${m.spec.service}</a>` : html`<span class="muted">–</span>`) },
          { label: "Phase", render: (m: Machine) => html`<${PhaseBadge} phase=${m.status?.phase} />` },
          { label: "Node", render: (m: Machine) => m.spec.node ?? html`<span class="muted">unscheduled</span>` },
          { label: "Started", render: (m: Machine) => ago(m.status?.startedAt, now) },
        ]}
      />
    <//>

    <${Section} title="Nodes" id="nodes">
      <${Table}
        caption="Nodes with capacity and use"
        rows=${nodes}
        rowKey=${(n: PithNode) => n.metadata.name}
        empty="No nodes have registered. Start an agent (pith agent, or pith up)."
        columns=${[
          { label: "Node", render: (n: PithNode) => html`<strong>${n.metadata.name}</strong>` },
          { label: "State", render: (n: PithNode) => (n.status?.ready ? html`<span class="badge ok">ready</span>` : html`<span class="badge bad">not ready</span>`) },
          { label: "Accelerator", render: (n: PithNode) => n.spec.accelerator },
          { label: "Memory", render: (n: PithNode) => html`<${Meter} value=${use(n).memoryMiB} max=${n.spec.capacity.memoryMiB} label=${`${use(n).memoryMiB} of ${n.spec.capacity.memoryMiB} MiB`} />` },
          { label: "vCPUs", render: (n: PithNode) => html`<${Meter} value=${use(n).vcpus} max=${n.spec.capacity.vcpus} label=${`${use(n).vcpus} of ${n.spec.capacity.vcpus}`} />` },
          { label: "Machines", render: (n: PithNode) => String(use(n).machines), numeric: true },
          { label: "Heartbeat", render: (n: PithNode) => ago(n.status?.heartbeatAt, now) },
        ]}
      />
    <//>

    <${Section} title="Recent events" id="events">
      <${EventList} events=${events} empty="Nothing has happened yet." />
    <//>
  </div>`;
}

function readyCell(s: Service): VNode {
  const desired = desiredMachines(s);
  const ready = s.status?.ready ?? 0;
  return html`<span class="ready-cell" data-ready=${ready} data-desired=${desired}>
    <${Meter} kind="progress" value=${ready} max=${desired} label=${`${ready}/${desired}`} />
    ${s.status?.crashLoop ? html`<span class="badge bad" title=${s.status.crashLoop.lastReason}>CrashLoopBackOff</span>` : null}
  </span>`;
}

export function phaseSummary(machines: Machine[]): VNode {
  if (machines.length === 0) return html`<span class="muted">none</span>`;
  const counts = new Map<string, number>();
  for (const m of machines) counts.set(m.status?.phase ?? "pending", (counts.get(m.status?.phase ?? "pending") ?? 0) + 1);
  return html`<span class="phase-summary">${[...counts].map(([phase, n]) => html`<span class=${`badge phase-${phase}`}>${n} ${phase}</span>`)}</span>`;
}

const involvedLink = (e: PithEvent): VNode => {
  const { kind, name } = e.spec.involved;
  const target = kind === "Service" ? href.service(name) : kind === "Machine" ? href.machine(name) : kind === "Image" ? href.image(name) : undefined;
  const label = `${kind.toLowerCase()}/${name}`;
  return target ? html`<a href=${target}>${label}</a>` : html`<span>${label}</span>`;
};

export function EventList({ events, empty }: { events: PithEvent[]; empty: string }): VNode {
  if (events.length === 0) return html`<p class="empty">${empty}</p>`;
  return html`<ol class="events">
    ${events.map(
      (e) => html`<li key=${e.metadata.name} class=${e.spec.type === "Warning" ? "event warning" : "event"}>
        <time datetime=${e.spec.at}>${time(e.spec.at)}</time>
        <span class="event-what">${involvedLink(e)} <strong>${e.spec.reason}</strong></span>
        <span class="event-message">${e.spec.message}</span>
      </li>`,
    )}
  </ol>`;
}

