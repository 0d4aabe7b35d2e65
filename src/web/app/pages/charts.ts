import { html } from "htm/preact";
import type { VNode } from "preact";
import { useEffect, useState } from "preact/hooks";
import { apiFetch, describeError } from "../api.ts";
import { Bars, Histogram, proxyRequestsByService } from "../charts.ts";
import { Section } from "../components.ts";
import { shortDigest } from "../format.ts";
import { useLive } from "../live.ts";
import { href } from "../router.ts";

export function ChartsPage(): VNode {
  const live = useLive();
  const byImage = new Map<string, number[]>();
  for (const sample of live.readySamples.values()) byImage.set(sample.image, [...(byImage.get(sample.image) ?? []), sample.readyMs]);
  const groups = [...byImage].sort((a, b) => b[1].length - a[1].length);

  return html`<div class="page">
    <h1 id="page-title" tabindex="-1">Charts</h1>
    <${Section} title="Boot to ready, per image" id="boot-chart">
      <p class="muted small">From the machines' boot timings (status.timings.readyMs): every machine listed or seen since this page was loaded, including those stopped since.</p>
      ${groups.length === 0
        ? html`<p class="empty">No machine has become ready yet.</p>`
        : html`<div class="charts">${groups.map(([digest, values]) => {
            const image = live.imageByDigest(digest);
            const title = image ? image.metadata.name : shortDigest(digest);
            return html`<div class="chart-block" data-image=${digest}>
              <h3>${image ? html`<a href=${href.image(image.metadata.name)}>${title}</a>` : html`<span class="mono">${title}</span>`}</h3>
              <${Histogram} values=${values} label=${`Boot to ready for ${title}`} />
            </div>`;
          })}</div>`}
    <//>
    <${Section} title="Requests per service" id="requests-chart"><${RequestsChart} /><//>
  </div>`;
}

/** From /metrics, read when the page opens and on demand (metrics have no watch). */
function RequestsChart(): VNode {
  const [state, setState] = useState<{ loading: boolean; text?: string; error?: string }>({ loading: true });
  const load = () => {
    setState((s) => ({ ...s, loading: true }));
    apiFetch("/metrics", { headers: { accept: "text/plain" } })
      .then((r) => r.text())
      .then((text) => setState({ loading: false, text }), (e) => setState({ loading: false, error: describeError(e) }));
  };
  useEffect(load, []);
  const requests = state.text === undefined ? undefined : proxyRequestsByService(state.text);
  const data = requests
    ? [...requests]
        .map(([service, r]) => ({
          label: service === "_unrouted" ? "(no route)" : service,
          value: r.total,
          detail: [...r.byStatus].sort().map(([status, n]) => `${n} × ${status}`).join(", "),
        }))
        .sort((a, b) => b.value - a.value)
    : [];
  return html`<div>
    <div class="card-actions-inline">
      <button type="button" class="button" onClick=${load} disabled=${state.loading}>${state.loading ? "Reading…" : "Refresh"}</button>
      <span class="muted small">Counts since the proxy started (pith_proxy_requests_total).</span>
    </div>
    ${state.error
      ? html`<p class="note error">Cannot read /metrics: ${state.error}</p>`
      : state.text === undefined
        ? html`<p class="muted">Loading…</p>`
        : requests === undefined
          ? html`<p class="empty">This control plane has no proxy metrics (the proxy runs in another process, or not at all).</p>`
          : data.length === 0
            ? html`<p class="empty">No request has gone through the proxy yet.</p>`
            : html`<${Bars} data=${data} label="Requests per service" unit="request" />`}
  </div>`;
}
