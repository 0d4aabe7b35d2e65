import type { EnvValue, ServiceRevision, ServiceSpec } from "./kinds.ts";

/** Revisions kept per service, and the most of its status they may take (objects stay small). */
export const KEEP_REVISIONS = 10;
const MAX_HISTORY_BYTES = 64 * 1024;

/**
 * The history after a service's template became `hash`: newest first. A template seen before
 * (an undo, or a change reverted by hand) moves to the front with the next number, as Kubernetes
 * renumbers a ReplicaSet it rolls back to, so the numbers always grow and "the previous" is second.
 */
export function recordRevision(history: readonly ServiceRevision[] | undefined, hash: string, image: string, spec: ServiceSpec, now: string): ServiceRevision[] {
  const past = history ?? [];
  if (past[0]?.templateHash === hash) return [...past];
  const next = Math.max(0, ...past.map((r) => r.revision)) + 1;
  const entry: ServiceRevision = {
    revision: next,
    templateHash: hash,
    image,
    ...(spec.env && Object.keys(spec.env).length > 0 ? { env: spec.env } : {}),
    ...(spec.startMode ? { startMode: spec.startMode } : {}),
    ...(spec.restartedAt ? { restartedAt: spec.restartedAt } : {}),
    createdAt: now,
  };
  const kept = [entry, ...past.filter((r) => r.templateHash !== hash)].slice(0, KEEP_REVISIONS);
  while (kept.length > 1 && new TextEncoder().encode(JSON.stringify(kept)).length > MAX_HISTORY_BYTES) kept.pop();
  return kept;
}

/** The spec that returns a service to a revision's template (the image pinned to its digest). */
export function specAtRevision(spec: ServiceSpec, revision: ServiceRevision): ServiceSpec {
  const { env: _env, startMode: _mode, restartedAt: _restarted, ...rest } = spec;
  return {
    ...rest,
    image: revision.image,
    ...(revision.env ? { env: revision.env } : {}),
    ...(revision.startMode ? { startMode: revision.startMode } : {}),
    ...(revision.restartedAt ? { restartedAt: revision.restartedAt } : {}),
  };
}

/** What differs from the revision before: which fields and env names (never env values). */
export function changeFrom(before: ServiceRevision | undefined, after: ServiceRevision): string {
  // The oldest revision kept: the first one, or one whose predecessor is no longer kept.
  if (!before) return after.revision === 1 ? "first" : "-";
  const changes: string[] = [];
  if (before.image !== after.image) changes.push("image");
  const names = new Set([...Object.keys(before.env ?? {}), ...Object.keys(after.env ?? {})]);
  const same = (a: EnvValue | undefined, b: EnvValue | undefined) => JSON.stringify(a) === JSON.stringify(b);
  const env = [...names].filter((n) => !same(before.env?.[n], after.env?.[n])).sort();
  if (env.length > 0) changes.push(`env ${env.join(",")}`);
  if ((before.startMode ?? "boot") !== (after.startMode ?? "boot")) changes.push(`startMode ${after.startMode ?? "boot"}`);
  if (before.restartedAt !== after.restartedAt) changes.push("restart");
  // The same spec with a new template: what changed is a Secret's value, memory or vCPUs.
  return changes.join("; ") || "secret or image shape";
}
