import { html } from "htm/preact";
import type { ComponentChildren, VNode } from "preact";
import { useEffect, useRef } from "preact/hooks";
import { ms } from "./format.ts";
import type { Machine, MachinePhase } from "./types.ts";

/** Shared building blocks. Everything clickable is a real <a> or <button>. */

export function PhaseBadge({ phase }: { phase: MachinePhase | undefined }): VNode {
  const name = phase ?? "pending";
  return html`<span class=${`badge phase-${name}`} data-phase=${name}>${name}</span>`;
}

export interface Column<T> {
  label: string;
  render: (row: T) => ComponentChildren;
  /** A column of numbers is right-aligned. */
  numeric?: boolean;
}

/**
 * A table that becomes a stack of cards on narrow screens (each cell then shows its column's
 * label, from data-label).
 */
export function Table<T>({ caption, columns, rows, rowKey, empty, rowProps }: {
  caption: string;
  columns: Column<T>[];
  rows: T[];
  rowKey: (row: T) => string;
  empty: ComponentChildren;
  rowProps?: (row: T) => Record<string, string>;
}): VNode {
  if (rows.length === 0) return html`<p class="empty">${empty}</p>`;
  return html`<table class="table">
    <caption class="visually-hidden">${caption}</caption>
    <thead><tr>${columns.map((c) => html`<th scope="col" class=${c.numeric ? "num" : ""}>${c.label}</th>`)}</tr></thead>
    <tbody>
      ${rows.map(
        (row) => html`<tr key=${rowKey(row)} ...${rowProps?.(row) ?? {}}>
          ${columns.map((c) => html`<td data-label=${c.label} class=${c.numeric ? "num" : ""}>${c.render(row)}</td>`)}
        </tr>`,
      )}
    </tbody>
  </table>`;
}

export function Section({ title, id, children, actions }: { title: string; id?: string; children: ComponentChildren; actions?: ComponentChildren }): VNode {
  const headingId = `${id ?? title.toLowerCase().replace(/[^a-z0-9]+/g, "-")}-heading`;
  return html`<section class="card" aria-labelledby=${headingId} id=${id}>
    <div class="card-head"><h2 id=${headingId}>${title}</h2>${actions ? html`<div class="card-actions">${actions}</div>` : null}</div>
    ${children}
  </section>`;
}

/**
 * A horizontal bar: value of max. A "usage" meter (node capacity) turns amber then red as it
 * fills; a "progress" meter (ready of desired) is amber until it is full, then green.
 */
export function Meter({ value, max, label, kind = "usage" }: { value: number; max: number; label: string; kind?: "usage" | "progress" }): VNode {
  const ratio = max > 0 ? Math.min(1, value / max) : kind === "progress" ? 1 : 0;
  const level = kind === "progress" ? (ratio >= 1 ? "low" : "mid") : ratio > 0.9 ? "high" : ratio > 0.7 ? "mid" : "low";
  return html`<span class="meter-wrap">
    <span class=${`meter meter-${level}`} aria-hidden="true"><span style=${{ width: `${(ratio * 100).toFixed(1)}%` }}></span></span>
    <span class="meter-text">${label}</span>
  </span>`;
}

export function ErrorNote({ children }: { children: ComponentChildren }): VNode {
  return html`<p class="note error" role="alert">${children}</p>`;
}

export const BOOT_STAGES = [
  { key: "vmmMs", label: "vmm", title: "VMM start (QEMU until the kernel runs)" },
  { key: "kernelMs", label: "kernel", title: "Kernel boot" },
  { key: "initMs", label: "init", title: "Init (until the app starts)" },
  { key: "appMs", label: "app", title: "App (until it is ready)" },
] as const;

/** What the colours of boot bars mean. */
export function BootLegend(): VNode {
  return html`<ul class="legend" aria-label="Boot stages">
    ${BOOT_STAGES.map((s) => html`<li><span class=${`swatch seg-${s.label}`} aria-hidden="true"></span>${s.title}</li>`)}
  </ul>`;
}

/** The boot stages of one machine as one stacked bar; `scaleMs` makes bars comparable. */
export function BootBar({ timings, scaleMs, compact }: { timings: Machine["status"]["timings"]; scaleMs?: number; compact?: boolean }): VNode {
  if (!timings || timings.readyMs === undefined) return html`<span class="muted">–</span>`;
  const total = Math.max(timings.readyMs, 1);
  const scale = Math.max(scaleMs ?? total, total);
  const summary = BOOT_STAGES.map((s) => `${s.label} ${ms(timings[s.key])}`).join(", ");
  return html`<span class=${compact ? "bootbar compact" : "bootbar"}>
    <span class="bootbar-track" role="img" aria-label=${`ready in ${ms(timings.readyMs)}: ${summary}`}>
      ${BOOT_STAGES.map((s) => {
        const value = timings[s.key] ?? 0;
        return html`<span class=${`seg seg-${s.label}`} style=${{ width: `${((value / scale) * 100).toFixed(2)}%` }} title=${`${s.title}: ${ms(value)}`}></span>`;
      })}
    </span>
    <span class="bootbar-total">${ms(timings.readyMs)}</span>
  </span>`;
}

/**
 * A modal confirmation (<dialog>): Escape or Cancel closes it, focus starts on Cancel, so a
 * destructive action always takes a deliberate second step.
 */
export function ConfirmDialog({ open, title, children, confirmLabel, busy, error, onConfirm, onCancel }: {
  open: boolean;
  title: string;
  children: ComponentChildren;
  confirmLabel: string;
  busy?: boolean;
  error?: string;
  onConfirm: () => void;
  onCancel: () => void;
}): VNode {
  const ref = useRef<HTMLDialogElement>(null);
  useEffect(() => {
    const dialog = ref.current;
    if (!dialog) return;
    if (open && !dialog.open) dialog.showModal();
    if (!open && dialog.open) dialog.close();
  }, [open]);
  const titleId = `dialog-${title.toLowerCase().replace(/[^a-z0-9]+/g, "-")}`;
  return html`<dialog ref=${ref} class="dialog" aria-labelledby=${titleId} onClose=${() => open && onCancel()}>
    <h2 id=${titleId}>${title}</h2>
    <div class="dialog-body">${children}</div>
    ${error ? html`<${ErrorNote}>${error}<//>` : null}
    <div class="dialog-actions">
      <button type="button" class="button" autofocus onClick=${onCancel}>Cancel</button>
      <button type="button" class="button danger" disabled=${busy} onClick=${onConfirm}>${busy ? "Working…" : confirmLabel}</button>
    </div>
  </dialog>`;
}
