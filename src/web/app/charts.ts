import { html } from "htm/preact";
import type { VNode } from "preact";
import { ms } from "./format.ts";

/** Small SVG charts, drawn here (no chart library): a histogram and horizontal bars. */

export interface Bin {
  from: number;
  to: number;
  count: number;
}

/**
 * A 1-2-5 step giving about `target` bins over the values' range, but no finer than 2% of the
 * largest value: boot times a few ms apart are the same boot time.
 */
export function histogram(values: number[], target = 10): Bin[] {
  if (values.length === 0) return [];
  const min = Math.min(...values);
  const max = Math.max(...values);
  const raw = Math.max((max - min) / target, max * 0.02, 1);
  const power = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * power).find((s) => s >= raw) ?? 10 * power;
  const start = Math.floor(min / step) * step;
  const count = Math.max(1, Math.floor((max - start) / step) + 1);
  const bins: Bin[] = Array.from({ length: count }, (_, i) => ({ from: start + i * step, to: start + (i + 1) * step, count: 0 }));
  for (const v of values) bins[Math.min(count - 1, Math.floor((v - start) / step))]!.count++;
  return bins;
}

export function quantile(values: number[], q: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  if (sorted.length === 0) return 0;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))]!;
}

export function Histogram({ values, label }: { values: number[]; label: string }): VNode {
  const bins = histogram(values);
  const width = 520;
  const height = 180;
  const pad = { left: 34, right: 10, top: 12, bottom: 36 };
  const plotW = width - pad.left - pad.right;
  const plotH = height - pad.top - pad.bottom;
  const top = Math.max(...bins.map((b) => b.count), 1);
  const barW = plotW / bins.length;
  // Boundary labels at least ~70 px apart, the last boundary included only when it falls on the step.
  const labelEvery = Math.max(1, Math.ceil(70 / barW));
  const ticks = Array.from({ length: bins.length + 1 }, (_, i) => i).filter((i) => i % labelEvery === 0);
  const summary = `${label}: ${values.length} ${values.length === 1 ? "machine" : "machines"}, median ${ms(quantile(values, 0.5))}, 90th percentile ${ms(quantile(values, 0.9))}, slowest ${ms(Math.max(...values))}`;
  return html`<figure class="chart">
    <svg viewBox=${`0 0 ${width} ${height}`} role="img" aria-label=${summary} preserveAspectRatio="xMidYMid meet">
      <title>${summary}</title>
      <line class="axis" x1=${pad.left} y1=${pad.top + plotH} x2=${pad.left + plotW} y2=${pad.top + plotH} />
      <line class="axis" x1=${pad.left} y1=${pad.top} x2=${pad.left} y2=${pad.top + plotH} />
      <text class="tick" x=${pad.left - 6} y=${pad.top + 4} text-anchor="end">${top}</text>
      <text class="tick" x=${pad.left - 6} y=${pad.top + plotH} text-anchor="end">0</text>
      ${bins.map((b, i) => {
        const h = (b.count / top) * plotH;
        const x = pad.left + i * barW;
        return html`<g>
          <rect class="bar" x=${x + 1} y=${pad.top + plotH - h} width=${Math.max(1, barW - 2)} height=${h}><title>${`${ms(b.from)}–${ms(b.to)}: ${b.count}`}</title></rect>
          ${b.count > 0 ? html`<text class="bar-label" x=${x + barW / 2} y=${pad.top + plotH - h - 3} text-anchor="middle">${b.count}</text>` : null}
        </g>`;
      })}
      ${ticks.map((i) => html`<g>
        <line class="axis" x1=${pad.left + i * barW} y1=${pad.top + plotH} x2=${pad.left + i * barW} y2=${pad.top + plotH + 4} />
        <text class="tick" x=${pad.left + i * barW} y=${pad.top + plotH + 16} text-anchor=${i === 0 ? "start" : i === bins.length ? "end" : "middle"}>${ms(i < bins.length ? bins[i]!.from : bins[bins.length - 1]!.to)}</text>
      </g>`)}
      <text class="axis-title" x=${pad.left + plotW / 2} y=${height - 4} text-anchor="middle">boot to ready</text>
    </svg>
    <figcaption>${summary}</figcaption>
  </figure>`;
}

export interface BarDatum {
  label: string;
  value: number;
  detail?: string;
}

export function Bars({ data, label, unit, units = `${unit}s` }: { data: BarDatum[]; label: string; unit: string; units?: string }): VNode {
  const max = Math.max(...data.map((d) => d.value), 1);
  return html`<ul class="bars" aria-label=${label}>
    ${data.map(
      (d) => html`<li class="bars-row">
        <span class="bars-label">${d.label}</span>
        <span class="bars-track"><span class="bars-bar" style=${{ width: `${((d.value / max) * 100).toFixed(1)}%` }}></span></span>
        <span class="bars-value">${d.value} ${d.value === 1 ? unit : units}${d.detail ? html` <span class="muted small">(${d.detail})</span>` : null}</span>
      </li>`,
    )}
  </ul>`;
}

/** `pith_proxy_requests_total{service,status}` from Prometheus text, summed per service. */
export function proxyRequestsByService(metrics: string): Map<string, { total: number; byStatus: Map<string, number> }> | undefined {
  if (!/^pith_proxy_requests_total[{ ]/m.test(metrics)) return undefined;
  const result = new Map<string, { total: number; byStatus: Map<string, number> }>();
  for (const line of metrics.split("\n")) {
    const match = /^pith_proxy_requests_total\{([^}]*)\}\s+(\S+)/.exec(line);
    if (!match) continue;
    const labels = Object.fromEntries([...match[1]!.matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)].map((m) => [m[1], m[2]]));
    const value = Number(match[2]);
    if (!Number.isFinite(value)) continue;
    const service = labels.service ?? "";
    const entry = result.get(service) ?? { total: 0, byStatus: new Map<string, number>() };
    entry.total += value;
    entry.byStatus.set(labels.status ?? "?", (entry.byStatus.get(labels.status ?? "?") ?? 0) + value);
    result.set(service, entry);
  }
  return result;
}

/** `pith_proxy_request_duration_seconds_bucket{service,le}` per service: cumulative counts by upper bound. */
export function proxyLatencyBuckets(metrics: string): Map<string, { le: number; count: number }[]> {
  const result = new Map<string, { le: number; count: number }[]>();
  for (const line of metrics.split("\n")) {
    const match = /^pith_proxy_request_duration_seconds_bucket\{([^}]*)\}\s+(\S+)/.exec(line);
    if (!match) continue;
    const labels = Object.fromEntries([...match[1]!.matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)].map((m) => [m[1], m[2]]));
    const le = labels.le === "+Inf" ? Infinity : Number(labels.le);
    const service = labels.service ?? "";
    result.set(service, [...(result.get(service) ?? []), { le, count: Number(match[2]) }]);
  }
  for (const buckets of result.values()) buckets.sort((a, b) => a.le - b.le);
  return result;
}

/**
 * A quantile from cumulative histogram buckets (what arrived between two samples: `now` minus
 * `before`), interpolated inside its bucket like Prometheus' histogram_quantile.
 */
export function bucketQuantile(q: number, now: { le: number; count: number }[], before: { le: number; count: number }[] = []): number | undefined {
  const counts = now.map((b, i) => ({ le: b.le, count: b.count - (before[i]?.le === b.le ? before[i]!.count : 0) }));
  const total = counts.at(-1)?.count ?? 0;
  if (total <= 0) return undefined;
  const rank = q * total;
  let lower = 0;
  let below = 0;
  for (const b of counts) {
    if (b.count >= rank) {
      if (!Number.isFinite(b.le)) return lower;
      const inBucket = b.count - below;
      return inBucket > 0 ? lower + ((b.le - lower) * (rank - below)) / inBucket : b.le;
    }
    lower = b.le;
    below = b.count;
  }
  return lower;
}
