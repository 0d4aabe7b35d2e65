import { html } from "htm/preact";
import type { VNode } from "preact";
import { useEffect, useState } from "preact/hooks";
import { apiFetch, describeError } from "../api.ts";
import { Bars, bucketQuantile, Histogram, proxyLatencyBuckets, proxyRequestsByService } from "../charts.ts";
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

/** How often the requests chart samples /metrics: metrics are rates, not objects, so they have no watch. */
const METRICS_SAMPLE_MS = 5000;

interface MetricsSample {
  at: number;
  text: string;
}

/**
 * Requests per second and latency per service, from two successive samples of /metrics (the
 * proxy's counters and latency histogram), plus the totals since the proxy started.
 */
function RequestsChart(): VNode {
  const [samples, setSamples] = useState<{ previous?: MetricsSample; current?: MetricsSample; error?: string; loading: boolean }>({ loading: true });
  const load = () => {
    setSamples((s) => ({ ...s, loading: true }));
    apiFetch("/metrics", { headers: { accept: "text/plain" } })
      .then((r) => r.text())
      .then(
        (text) => setSamples((s) => ({ previous: s.current, current: { at: Date.now(), text }, loading: false })),
        (e) => setSamples((s) => ({ ...s, loading: false, error: describeError(e) })),
      );
  };
  useEffect(() => {
    load();
    const timer = setInterval(load, METRICS_SAMPLE_MS);
    return () => clearInterval(timer);
  }, []);
  const { current, previous } = samples;
  const requests = current === undefined ? undefined : proxyRequestsByService(current.text);
  const before = previous ? proxyRequestsByService(previous.text) : undefined;
  const latencyNow = current ? proxyLatencyBuckets(current.text) : new Map();
  const latencyBefore = previous ? proxyLatencyBuckets(previous.text) : new Map();
  const seconds = current && previous ? (current.at - previous.at) / 1000 : 0;
  const services = requests ? [...requests].filter(([service]) => service !== "_unrouted").sort((a, b) => b[1].total - a[1].total) : [];
  const rate = (service: string, total: number) => (seconds > 0 ? (total - (before?.get(service)?.total ?? 0)) / seconds : undefined);
  const ms = (v: number | undefined) => (v === undefined ? "–" : `${(v * 1000).toFixed(v < 0.01 ? 2 : 1)} ms`);
  return html`<div>
    <div class="card-actions-inline">
      <button type="button" class="button" onClick=${load} disabled=${samples.loading}>${samples.loading ? "Reading…" : "Refresh"}</button>
      <span class="muted small">Sampled from /metrics every ${METRICS_SAMPLE_MS / 1000} s: rates and latency over the last interval, totals since the proxy started.</span>
    </div>
    ${samples.error
      ? html`<p class="note error">Cannot read /metrics: ${samples.error}</p>`
      : current === undefined
        ? html`<p class="muted">Loading…</p>`
        : requests === undefined
          ? html`<p class="empty">This control plane has no proxy metrics (the proxy runs in another process, or not at all).</p>`
          : services.length === 0
            ? html`<p class="empty">No request has gone through the proxy yet.</p>`
            : html`<${Bars}
                  data=${services.map(([service, r]) => ({
                    label: service,
                    value: r.total,
                    detail: [...r.byStatus].sort().map(([status, n]) => `${n} × ${status}`).join(", "),
                  }))}
                  label="Requests per service since the proxy started"
                  unit="request"
                />
                <table class="table" aria-label="Requests per second and latency per service">
                  <thead><tr><th scope="col">Service</th><th scope="col">Requests/s</th><th scope="col">p50</th><th scope="col">p99</th></tr></thead>
                  <tbody>
                    ${services.map(([service, r]) => {
                      const perSecond = rate(service, r.total);
                      const now = latencyNow.get(service) ?? [];
                      const then = latencyBefore.get(service);
                      return html`<tr data-service=${service}>
                        <td>${service}</td>
                        <td>${perSecond === undefined ? "–" : perSecond.toFixed(1)}</td>
                        <td>${ms(bucketQuantile(0.5, now, then))}</td>
                        <td>${ms(bucketQuantile(0.99, now, then))}</td>
                      </tr>`;
                    })}
                  </tbody>
                </table>`}
  </div>`;
}
