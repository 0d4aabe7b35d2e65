import { html } from "htm/preact";
import type { VNode } from "preact";
import { useEffect, useRef, useState } from "preact/hooks";
import { api, apiFetch, describeError } from "../api.ts";
import { BOOT_STAGES, ConfirmDialog, PhaseBadge, Section } from "../components.ts";
import { ms, shortDigest, time } from "../format.ts";
import { useLive } from "../live.ts";
import { href, navigate } from "../router.ts";
import type { Image, Machine } from "../types.ts";
import { EventList } from "./overview.ts";

export function MachinePage({ name }: { name: string }): VNode {
  const live = useLive();
  const machine = live.machine(name);
  // Once a machine is gone its last known state stays on screen, marked as gone.
  const lastSeen = useRef<Machine | undefined>(undefined);
  if (machine) lastSeen.current = machine;
  const shown = machine ?? lastSeen.current;
  if (!shown) {
    return html`<div class="page">
      <h1 id="page-title" tabindex="-1">Machine ${name}</h1>
      <p class="empty">${live.loaded ? html`There is no machine named <strong>${name}</strong>.` : "Loading…"}</p>
      <p><a href=${href.overview}>Back to the overview</a></p>
    </div>`;
  }
  const image = live.imageByDigest(shown.spec.image);
  const status = shown.status ?? { phase: "pending" };
  const events = live.events.filter((e) => e.spec.involved.kind === "Machine" && e.spec.involved.name === name);
  // The console exists once QEMU runs (the agent reports its pid).
  const hasConsole = status.pid !== undefined;

  return html`<div class="page">
    <h1 id="page-title" tabindex="-1"><span class="muted kind">Machine</span> ${name} <${PhaseBadge} phase=${machine ? status.phase : "stopped"} /></h1>
    ${machine ? null : html`<p class="note warn" role="status">This machine's object has been deleted; what is shown is its last known state.</p>`}
    ${status.reason ? html`<p class="note ${status.phase === "failed" ? "error" : ""}">${status.reason}</p>` : null}
    <dl class="facts">
      <div><dt>Service</dt><dd>${shown.spec.service ? html`<a href=${href.service(shown.spec.service)}>${shown.spec.service}</a>` : "none"}</dd></div>
      <div><dt>Node</dt><dd>${shown.spec.node ?? "unscheduled"}</dd></div>
      <div><dt>Image</dt><dd class="mono">${image ? html`<a href=${href.image(image.metadata.name)}>${image.metadata.name}</a>` : shortDigest(shown.spec.image)}</dd></div>
      <div><dt>Size</dt><dd>${shown.spec.memoryMiB} MiB, ${shown.spec.vcpus} vCPU</dd></div>
      <div><dt>Accelerator</dt><dd>${status.accelerator ?? "–"}${status.pid ? html` <span class="muted small">(pid ${status.pid})</span>` : null}</dd></div>
      <div><dt>Started from</dt><dd>${status.startedFrom === "snapshot" ? html`a snapshot${status.timings?.restoreMs !== undefined ? html` <span class="muted small">(loaded in ${Math.round(status.timings.restoreMs)} ms)</span>` : null}` : (status.startedFrom ?? "–")}</dd></div>
      ${status.pull ? html`<div><dt>Image pull</dt><dd>${pullText(status.pull)} <span class="muted small mono">from ${status.pull.source}</span></dd></div>` : null}
      <div><dt>Started / ready</dt><dd>${time(status.startedAt)} / ${time(status.readyAt)}</dd></div>
      <div><dt>Address</dt><dd>${(status.addresses ?? []).length ? status.addresses!.map((a) => html`<a class="mono" href=${a.url} target="_blank" rel="noopener noreferrer">${a.url}</a> <span class="small muted">(guest :${a.guestPort})</span> `) : "–"}</dd></div>
      ${status.exitCode !== undefined ? html`<div><dt>Exit code</dt><dd>${status.exitCode}</dd></div>` : null}
    </dl>

    <div class="grid-2">
      <${Section} title="Boot timeline" id="boot"><${BootTimeline} timings=${status.timings} /><//>
      <${Section} title="Capabilities" id="capabilities"><${Capabilities} image=${image} /><//>
    </div>

    <${Section} title="Console" id="console">
      ${hasConsole ? html`<${ConsoleView} key=${shown.metadata.uid} name=${name} />` : html`<p class="muted">The console starts when the machine's VM does (now: ${status.phase}).</p>`}
    <//>

    ${machine ? html`<${Section} title="Stop" id="stop"><${StopMachine} machine=${machine} /><//>` : null}

    <${Section} title="Events" id="machine-events"><${EventList} events=${events.slice(0, 20)} empty="No events for this machine." /><//>
  </div>`;
}

/** vmm, kernel, init and app as consecutive bars on one time axis. */
function BootTimeline({ timings }: { timings: Machine["status"]["timings"] }): VNode {
  if (!timings || timings.readyMs === undefined) return html`<p class="muted">Not ready yet: the timings arrive when the app says it is ready.</p>`;
  const total = Math.max(timings.readyMs, 1);
  let start = 0;
  return html`<div class="timeline">
    <ol class="timeline-rows" aria-label=${`Boot to ready in ${ms(timings.readyMs)}`}>
      ${BOOT_STAGES.map((stage) => {
        const value = timings[stage.key] ?? 0;
        const left = (start / total) * 100;
        start += value;
        return html`<li class="timeline-row">
          <span class="timeline-label">${stage.label}</span>
          <span class="timeline-track" title=${stage.title}><span class=${`seg seg-${stage.label}`} style=${{ marginLeft: `${left.toFixed(2)}%`, width: `${Math.max(0.5, (value / total) * 100).toFixed(2)}%` }}></span></span>
          <span class="timeline-value">${ms(value)}</span>
        </li>`;
      })}
    </ol>
    <p class="timeline-total">Ready in <strong>${ms(timings.readyMs)}</strong> from the VMM's start.</p>
  </div>`;
}

function Capabilities({ image }: { image: Image | undefined }): VNode {
  if (!image) return html`<p class="muted">The image of this machine is not registered with the control plane, so its declared capabilities are unknown here.</p>`;
  const { listen, egress, memoryMiB, vcpus, runtime } = image.spec;
  return html`<ul class="caps">
    <li>${listen.length ? html`Listens on ${listen.map((p) => html`<span class="mono">:${p}</span> `)}` : "Listens on no port"}</li>
    <li>${egress.length ? html`May connect to ${egress.map((e) => html`<span class="mono">${e}</span> `)}` : "May connect to nothing (no egress)"}</li>
    <li>${memoryMiB} MiB memory, ${vcpus} vCPU, ${runtime} runtime</li>
    <li>Nothing else: no other port, destination or file is reachable. <a href=${href.image(image.metadata.name)}>Inspect the image</a></li>
  </ul>`;
}

// ANSI colour and cursor sequences, and carriage returns, mean nothing in a <pre>.
const CONTROL = /\x1b\[[0-9;?]*[A-Za-z]|\r/g;
const MAX_CONSOLE_CHARS = 200_000;

/** The console log, followed live: a streamed fetch (ReadableStream), ended when the machine is deleted. */
function ConsoleView({ name }: { name: string }): VNode {
  const [text, setText] = useState("");
  const [state, setState] = useState<"connecting" | "following" | "ended" | "error">("connecting");
  const [error, setError] = useState("");
  const [follow, setFollow] = useState(true);
  const pre = useRef<HTMLPreElement>(null);

  useEffect(() => {
    const abort = new AbortController();
    // Every failure ends in the catch below, shown as the view's error.
    void (async () => {
      try {
        const response = await apiFetch(`/api/v1/machines/${encodeURIComponent(name)}/console?follow=true`, { signal: abort.signal, headers: { accept: "text/plain" } });
        setState("following");
        const reader = response.body!.getReader();
        const decoder = new TextDecoder();
        for (;;) {
          const { done, value } = await reader.read();
          if (done) break;
          const chunk = decoder.decode(value, { stream: true }).replace(CONTROL, "");
          if (chunk) setText((t) => (t + chunk).slice(-MAX_CONSOLE_CHARS));
        }
        setState("ended");
      } catch (e) {
        if (abort.signal.aborted) return;
        setError(describeError(e));
        setState("error");
      }
    })();
    return () => abort.abort();
  }, [name]);

  useEffect(() => {
    const element = pre.current;
    if (follow && element) element.scrollTop = element.scrollHeight;
  }, [text, follow]);

  const label = { connecting: "Connecting…", following: "Following live", ended: "Ended: the machine is gone", error: `Stopped: ${error}` }[state];
  return html`<div class="console-wrap">
    <div class="console-bar">
      <span class=${`live-dot ${state}`} role="status">${label}</span>
      <label class="checkbox"><input type="checkbox" checked=${follow} onChange=${(e: Event) => setFollow((e.target as HTMLInputElement).checked)} /> Scroll to the newest output</label>
    </div>
    <pre ref=${pre} class="console" role="log" tabindex="0" aria-label=${`Console of ${name}`} data-testid="console">${text || (state === "following" ? "(no output yet)" : "")}</pre>
  </div>`;
}

/**
 * Pith has no in-place restart: stopping a machine means deleting its object (the agent stops
 * the VM). A service's controller then starts a new machine in its place.
 */
function StopMachine({ machine }: { machine: Machine }): VNode {
  const [open, setOpen] = useState(false);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState("");
  const name = machine.metadata.name;
  const service = machine.spec.service;
  const label = service ? "Stop and replace…" : "Stop and delete…";
  const confirm = async () => {
    setBusy(true);
    setError("");
    try {
      await api("DELETE", `/api/v1/machines/${encodeURIComponent(name)}`);
      setOpen(false);
      navigate(service ? href.service(service) : href.overview);
    } catch (e) {
      setError(describeError(e));
    } finally {
      setBusy(false);
    }
  };
  return html`<p>${service
      ? html`Stopping deletes this machine's object; its VM is stopped, and service <a href=${href.service(service)}>${service}</a> then starts a <strong>new</strong> machine in its place. That is how a machine is restarted: there is no restart in place.`
      : html`Stopping deletes this machine's object and its VM is stopped. Nothing replaces it: it belongs to no service.`}</p>
    <button type="button" class="button danger" onClick=${() => setOpen(true)}>${label}</button>
    <${ConfirmDialog} open=${open} title=${`Stop machine ${name}?`} confirmLabel=${service ? "Stop; the service replaces it" : "Stop and delete"} busy=${busy} error=${error}
      onConfirm=${confirm} onCancel=${() => { setOpen(false); setError(""); }}>
      <p>The app in ${name} is stopped and the machine's object deleted${service ? `; ${service} boots a replacement with a new name` : ""}. Its console log stays on the node.</p>
    <//>`;
}

/** A pull in progress (bytes of the total) or done (its size and time). */
function pullText(pull: NonNullable<Machine["status"]["pull"]>): string {
  const mib = (bytes: number) => (bytes / 1024 / 1024).toFixed(1);
  return pull.ms !== undefined ? `${mib(pull.bytes)} MiB in ${(pull.ms / 1000).toFixed(1)} s, verified` : `pulling: ${mib(pull.bytes)} of ${mib(pull.totalBytes)} MiB`;
}
