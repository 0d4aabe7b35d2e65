import { html } from "htm/preact";
import type { VNode } from "preact";
import { useEffect, useMemo, useRef, useState } from "preact/hooks";
import { ScaleBody } from "../../../api/schemas/requests.ts";
import { api, ApiRequestError, describeError } from "../api.ts";
import { BootBar, BootLegend, ConfirmDialog, ErrorNote, Meter, PhaseBadge, Section, Table } from "../components.ts";
import { fieldProblems, REPLICAS } from "../field-rules.ts";
import { shortDigest } from "../format.ts";
import { useLive, type LiveState } from "../live.ts";
import { checkServiceManifest, describePath, locateServerDetails, serviceToYaml, type Problem } from "../manifest.ts";
import { href, navigate } from "../router.ts";
import { declarationOf, desiredMachines, isAutoscaled, type Machine, type Service, type ServiceRevision } from "../types.ts";
import { useDelete } from "../use-delete.ts";
import { rolloutProgress } from "../../../model/rollout-progress.ts";
import { changeFrom } from "../../../model/revision-history.ts";
import { isOfTemplate } from "../../../model/template-label.ts";
import { EventList } from "./overview.ts";

export function ServicePage({ name }: { name: string }): VNode {
  const live = useLive();
  const service = live.service(name);
  if (!service) {
    return html`<div class="page">
      <h1 id="page-title" tabindex="-1">Service ${name}</h1>
      <p class="empty">${live.loaded ? html`There is no service named <strong>${name}</strong> (it may have been deleted).` : "Loading…"}</p>
      <p><a href=${href.overview}>Back to the overview</a></p>
    </div>`;
  }
  const machines = live.machinesOf(name);
  const digest = service.status?.imageDigest;
  const image = live.imageByDigest(digest);
  const events = live.events.filter(
    (e) => (e.spec.involved.kind === "Service" && e.spec.involved.name === name) || (e.spec.involved.kind === "Machine" && machines.some((m) => m.metadata.name === e.spec.involved.name)),
  );
  const desired = desiredMachines(service);
  const ready = service.status?.ready ?? 0;
  const slowest = Math.max(0, ...machines.map((m) => m.status?.timings?.readyMs ?? 0));

  return html`<div class="page">
    <h1 id="page-title" tabindex="-1"><span class="muted kind">Service</span> ${name}</h1>
    <dl class="facts">
      <div><dt>Image</dt><dd class="mono">${service.spec.image.startsWith("sha256:") ? shortDigest(service.spec.image) : service.spec.image}</dd></div>
      <div><dt>Resolved digest</dt><dd class="mono">${digest ? (image ? html`<a href=${href.image(image.metadata.name)}>${shortDigest(digest)}</a>` : shortDigest(digest)) : "not resolved yet"}</dd></div>
      <div><dt>Ready</dt><dd data-testid="service-ready"><${Meter} kind="progress" value=${ready} max=${desired} label=${`${ready} of ${desired} ready`} /></dd></div>
      <div><dt>Generation</dt><dd>${service.metadata.generation}${service.status?.observedGeneration === service.metadata.generation ? "" : " (being applied)"}</dd></div>
    </dl>
    ${service.status?.crashLoop ? html`<${ErrorNote}>CrashLoopBackOff: ${service.status.crashLoop.failures} failures; last: ${service.status.crashLoop.lastReason}. Next attempt at ${new Date(service.status.crashLoop.nextAttemptAt).toLocaleTimeString()}.<//>` : null}
    ${service.status?.message ? html`<p class="note">${service.status.message}</p>` : null}

    <div class="grid-2">
      <${Section} title="Scale" id="scale"><${ScaleControl} service=${service} /><//>
      <${Section} title="Rollout" id="rollout"><${Rollout} service=${service} machines=${machines} live=${live} /><//>
    </div>

    <${Section} title="Machines" id="service-machines">
      <${Table}
        caption=${`Machines of service ${name}`}
        rows=${machines}
        rowKey=${(m: Machine) => m.metadata.name}
        rowProps=${(m: Machine) => ({ "data-machine": m.metadata.name, "data-phase": m.status?.phase ?? "pending" })}
        empty="No machines yet."
        columns=${[
          { label: "Machine", render: (m: Machine) => html`<a href=${href.machine(m.metadata.name)}>${m.metadata.name}</a>` },
          { label: "Phase", render: (m: Machine) => html`<${PhaseBadge} phase=${m.status?.phase} />${m.status?.reason ? html` <span class="small muted">${m.status.reason}</span>` : null}` },
          { label: "Node", render: (m: Machine) => m.spec.node ?? html`<span class="muted">unscheduled</span>` },
          { label: "Image", render: (m: Machine) => html`<span class="mono">${shortDigest(m.spec.image)}</span> ${isOfTemplate(m, service.status?.templateHash, digest) ? html`<span class="badge ok">current</span>` : html`<span class="badge warn">old</span>`}` },
          { label: "Boot (vmm, kernel, init, app)", render: (m: Machine) => html`<${BootBar} timings=${m.status?.timings} scaleMs=${slowest} compact />` },
          { label: "Address", render: (m: Machine) => addresses(m) },
        ]}
      />
      ${machines.some((m) => m.status?.timings?.readyMs !== undefined) ? html`<${BootLegend} />` : null}
    <//>

    <${Section} title="Hosts and routes" id="routes"><${Routes} service=${service} ready=${ready} /><//>

    <${Section} title="Manifest" id="manifest"><${ManifestEditor} service=${service} /><//>

    <${Section} title="Events" id="service-events"><${EventList} events=${events.slice(0, 20)} empty="No events for this service yet." /><//>

    <${Section} title="Delete" id="delete"><${DeleteService} name=${name} machines=${machines.length} /><//>
  </div>`;
}

function addresses(m: Machine): VNode {
  const list = m.status?.addresses ?? [];
  if (list.length === 0) return html`<span class="muted">–</span>`;
  return html`<span class="addresses">${list.map((a) => html`<a href=${a.url} target="_blank" rel="noopener noreferrer" class="mono">${a.url.replace(/^https?:\/\//, "")}</a> <span class="small muted">(:${a.guestPort})</span> `)}</span>`;
}

function ScaleControl({ service }: { service: Service }): VNode {
  const name = service.metadata.name;
  const replicas = service.spec.replicas;
  const [value, setValue] = useState(String(replicas ?? 0));
  const [error, setError] = useState("");
  const [busy, setBusy] = useState(false);
  const [done, setDone] = useState("");
  // Follow changes made elsewhere, unless the user is typing a different number.
  const last = useRef(replicas);
  useEffect(() => {
    if (last.current !== replicas) {
      last.current = replicas;
      setValue(String(replicas ?? 0));
    }
  }, [replicas]);

  if (isAutoscaled(service.spec)) {
    return html`<p>Autoscaled between <strong>min ${service.spec.min ?? 0}</strong> and <strong>max ${service.spec.max ?? "–"}</strong> machines${service.status?.autoscale ? html`; the autoscaler wants <strong>${service.status.autoscale.desired}</strong> now` : null}.</p>
      <p class="muted small">Change min and max in the manifest below.</p>`;
  }

  const submit = async (event: Event) => {
    event.preventDefault();
    const n = Number(value);
    const problem = fieldProblems(ScaleBody, { replicas: n }).get("/replicas");
    if (problem) {
      setError(`Replicas ${problem}: a whole number from ${REPLICAS.min} to ${REPLICAS.max}.`);
      return;
    }
    setBusy(true);
    setError("");
    setDone("");
    try {
      await api("POST", `/api/v1/services/${encodeURIComponent(name)}/scale`, { replicas: n });
      setDone(`Scaling to ${n}.`);
    } catch (e) {
      setError(describeError(e));
    } finally {
      setBusy(false);
    }
  };
  return html`<form class="inline-form" onSubmit=${submit} novalidate>
    <label for="replicas">Replicas</label>
    <input id="replicas" type="number" min=${REPLICAS.min} max=${REPLICAS.max} step="1" inputmode="numeric" value=${value}
      onInput=${(e: Event) => setValue((e.target as HTMLInputElement).value)}
      aria-invalid=${error ? "true" : "false"} aria-describedby="scale-message" />
    <button type="submit" class="button primary" disabled=${busy}>${busy ? "Scaling…" : "Scale"}</button>
    <p id="scale-message" class=${error ? "field-error" : "muted small"} role="status">${error || done || `Now ${replicas ?? 0} desired.`}</p>
  </form>`;
}

/**
 * Where the rollout stands (the same rule as `pith rollout status`), the revisions kept, and
 * restart / undo, which the API refuses (and this shows why) to a token that may not write.
 */
function Rollout({ service, machines, live }: { service: Service; machines: Machine[]; live: LiveState }): VNode {
  const [busy, setBusy] = useState("");
  const [error, setError] = useState("");
  const digest = service.status?.imageDigest;
  if (!digest) return html`<p class="muted">The image is not resolved yet.</p>`;
  const progress = rolloutProgress(service, machines);
  const oldMachines = machines.filter((m) => m.spec.desiredState !== "stopped" && !isOfTemplate(m, service.status?.templateHash, digest));
  const name = (d: string) => live.imageByDigest(d)?.metadata.name ?? shortDigest(d);
  const revisions = service.status?.revisions ?? [];
  const act = async (action: "restart" | "undo", toRevision?: number) => {
    setBusy(action);
    setError("");
    try {
      await api("POST", `/api/v1/services/${encodeURIComponent(service.metadata.name)}/rollout/${action}`, toRevision === undefined ? {} : { toRevision });
    } catch (e) {
      setError(describeError(e));
    } finally {
      setBusy("");
    }
  };
  return html`<div class="rollout" data-rollout=${progress.done ? "complete" : "in-progress"}>
    <p><strong>${progress.done ? "Up to date" : "Rolling out"}</strong>: ${progress.updatedReady} of ${progress.desired} machines ready on the current template${service.status?.revision ? ` (revision ${service.status.revision})` : ""}, image <span class="mono">${name(digest)}</span>.</p>
    <${Meter} kind="progress" value=${progress.updatedReady} max=${progress.desired} label=${`${progress.updatedReady}/${progress.desired} current and ready`} />
    ${progress.done ? null : html`<p class="small" data-testid="rollout-message">${progress.message}</p>`}
    ${oldMachines.length > 0
      ? html`<p>${oldMachines.length} ${oldMachines.length === 1 ? "machine" : "machines"} of an older template (${oldMachines.filter((m) => m.status?.phase === "draining").length} draining).</p>`
      : html`<p class="muted small">No machines of older templates.</p>`}
    ${service.spec.update ? html`<p class="muted small">Strategy: rolling, maxSurge ${service.spec.update.maxSurge}, maxUnavailable ${service.spec.update.maxUnavailable}.</p>` : null}
    <p>
      <button type="button" class="button" disabled=${busy !== ""} onClick=${() => act("restart")}>${busy === "restart" ? "Restarting…" : "Restart"}</button>
      ${" "}<button type="button" class="button" disabled=${busy !== "" || revisions.length < 2} onClick=${() => act("undo")}>${busy === "undo" ? "Undoing…" : "Undo"}</button>
    </p>
    ${error ? html`<${ErrorNote}>${error}<//>` : null}
    <${Table}
      caption=${`Revisions of service ${service.metadata.name}, newest first`}
      rows=${revisions}
      rowKey=${(r: ServiceRevision) => String(r.revision)}
      rowProps=${(r: ServiceRevision) => ({ "data-revision": String(r.revision), ...(r.revision === service.status?.revision ? { "aria-current": "true" } : {}) })}
      empty="No revisions yet."
      columns=${[
        { label: "Revision", render: (r: ServiceRevision) => `${r.revision}${r.revision === service.status?.revision ? " (current)" : ""}` },
        { label: "Template", render: (r: ServiceRevision) => html`<span class="mono">${r.templateHash}</span>` },
        { label: "Image", render: (r: ServiceRevision) => html`<span class="mono">${name(r.image)}</span>` },
        { label: "Change", render: (r: ServiceRevision) => changeFrom(revisions[revisions.indexOf(r) + 1], r) },
        { label: "Created", render: (r: ServiceRevision) => new Date(r.createdAt).toLocaleTimeString() },
      ]}
    />
  </div>`;
}

function Routes({ service, ready }: { service: Service; ready: number }): VNode {
  const hosts = service.spec.hosts ?? [];
  if (hosts.length === 0) {
    return html`<p class="muted">No hosts: the proxy routes nothing to this service. Add <code>hosts: [name.example]</code> to the manifest to route requests for those host names here.</p>`;
  }
  return html`<ul class="routes">
    ${hosts.map((h) => html`<li><span class="mono">${h}</span> <span aria-hidden="true">→</span><span class="visually-hidden">routes to</span> ${service.metadata.name} <span class="muted small">(${ready} ready ${ready === 1 ? "machine" : "machines"})</span></li>`)}
  </ul>`;
}

/**
 * The manifest as YAML. Every keystroke is checked (syntax with line numbers, known fields,
 * types and values); Save stays disabled while there are problems. The server may still refuse
 * (a 400 with details), and that is shown the same way. While the text is unchanged it follows
 * the live object; once edited it stays put, and a concurrent spec change is pointed out.
 */
function ManifestEditor({ service }: { service: Service }): VNode {
  const name = service.metadata.name;
  const serverText = useMemo(() => serviceToYaml(service), [service.metadata.name, declarationOf(service)]);
  const [text, setText] = useState(serverText);
  const [dirty, setDirty] = useState(false);
  const [base, setBase] = useState(service.metadata.generation);
  const [serverProblems, setServerProblems] = useState<Problem[]>([]);
  const [message, setMessage] = useState("");
  const [error, setError] = useState("");
  const [busy, setBusy] = useState(false);

  useEffect(() => {
    if (!dirty) {
      setText(serverText);
      setBase(service.metadata.generation);
    }
  }, [serverText]);

  const check = useMemo(() => checkServiceManifest(text, name), [text, name]);
  const problems = check.problems.length ? check.problems : serverProblems;
  const changedElsewhere = dirty && service.metadata.generation !== base;

  const onInput = (e: Event) => {
    setText((e.target as HTMLTextAreaElement).value);
    setDirty(true);
    setServerProblems([]);
    setMessage("");
    setError("");
  };
  const discard = () => {
    setText(serverText);
    setBase(service.metadata.generation);
    setDirty(false);
    setServerProblems([]);
    setError("");
  };
  const save = async (event: Event) => {
    event.preventDefault();
    if (!check.manifest) return;
    setBusy(true);
    setError("");
    setMessage("");
    try {
      const saved = await putSpec(name, check.manifest, base, changedElsewhere);
      setDirty(false);
      setBase(saved.metadata.generation);
      setText(serviceToYaml(saved));
      setMessage(`Saved: generation ${saved.metadata.generation}.`);
    } catch (e) {
      if (e instanceof ApiRequestError && e.details.length > 0) {
        setServerProblems(locateServerDetails(text, e.details));
        setError(`The control plane refused the manifest: ${e.message}`);
      } else setError(describeError(e));
    } finally {
      setBusy(false);
    }
  };

  const hasProblems = problems.length > 0;
  return html`<form class="editor" onSubmit=${save} novalidate>
    <label for="manifest-text">Service manifest (YAML)</label>
    <p class="muted small" id="manifest-help">Checked as you type. A change to the image, env or start mode rolls the machines over under the update strategy; replicas and hosts apply in place.</p>
    <textarea id="manifest-text" class="code" rows=${Math.min(24, Math.max(8, text.split("\n").length + 1))} spellcheck="false" autocapitalize="off" autocomplete="off"
      value=${text} onInput=${onInput} aria-invalid=${hasProblems ? "true" : "false"} aria-describedby="manifest-help manifest-problems manifest-status"></textarea>
    <div id="manifest-problems" aria-live="polite">
      ${hasProblems
        ? html`<ul class="problems" data-testid="manifest-problems">
            ${problems.map((p) => html`<li><span class="where">${p.line !== undefined ? `Line ${p.line}${p.col !== undefined ? `, column ${p.col}` : ""}` : "Manifest"}</span>${p.path.length ? html` <code>${describePath(p.path)}</code>` : null}: ${p.message}</li>`)}
          </ul>`
        : null}
    </div>
    ${changedElsewhere ? html`<p class="note warn" role="status">The service's spec changed since you started editing (generation ${base} → ${service.metadata.generation}). Saving replaces it with your text; discard to load the latest.</p>` : null}
    ${error ? html`<${ErrorNote}>${error}<//>` : null}
    <div class="editor-actions">
      <button type="submit" class="button primary" disabled=${busy || !dirty || check.problems.length > 0}>${busy ? "Saving…" : "Save manifest"}</button>
      <button type="button" class="button" disabled=${!dirty || busy} onClick=${discard}>Discard changes</button>
      <span id="manifest-status" class="muted small" role="status">${message || (dirty ? (check.problems.length ? "Fix the problems above to save." : "Unsaved changes.") : "No changes.")}</span>
    </div>
  </form>`;
}

/**
 * Replaces the spec. Status writes also move resourceVersion, so the current one is used, and a
 * 409 from a racing status write is retried, as long as the spec itself (its generation) has
 * not changed since the user began; if it has, only `force` saves over it.
 */
async function putSpec(name: string, manifest: ReturnType<typeof checkServiceManifest>["manifest"] & object, baseGeneration: number, force: boolean): Promise<Service> {
  for (let attempt = 1; ; attempt++) {
    const current = await api<Service>("GET", `/api/v1/services/${encodeURIComponent(name)}`);
    if (current.metadata.generation !== baseGeneration && !force) {
      throw new Error(`the spec was changed elsewhere (generation ${baseGeneration} → ${current.metadata.generation}); discard your changes or save again to replace it`);
    }
    try {
      return await api<Service>("PUT", `/api/v1/services/${encodeURIComponent(name)}`, {
        ...manifest,
        metadata: { ...manifest.metadata, resourceVersion: current.metadata.resourceVersion },
      });
    } catch (e) {
      if (!(e instanceof ApiRequestError && e.status === 409 && attempt < 4)) throw e;
    }
  }
}

function DeleteService({ name, machines }: { name: string; machines: number }): VNode {
  const [open, setOpen] = useState(false);
  const { busy, error, confirm, clearError } = useDelete(`/api/v1/services/${encodeURIComponent(name)}`, () => {
    setOpen(false);
    navigate(href.overview);
  });
  return html`<p>Deleting the service drains and stops its ${machines === 1 ? "machine" : `${machines} machines`}.</p>
    <button type="button" class="button danger" onClick=${() => setOpen(true)}>Delete service…</button>
    <${ConfirmDialog} open=${open} title=${`Delete service ${name}?`} confirmLabel=${`Delete ${name}`} busy=${busy} error=${error}
      onConfirm=${confirm} onCancel=${() => { setOpen(false); clearError(); }}>
      <p>Its ${machines === 1 ? "machine" : `${machines} machines`} will be drained and stopped, and the proxy stops routing to it. This cannot be undone.</p>
    <//>`;
}
