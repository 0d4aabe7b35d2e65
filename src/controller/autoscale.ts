import type { ServiceSpec, ServiceStatus } from "../model/kinds.ts";
import type { ServiceLoad } from "./load-board.ts";

export const AUTOSCALE_DEFAULTS = { targetInFlight: 10, cooldownSeconds: 30, idleSeconds: 60 };

/**
 * Load must stay above what the machines can take for this long before more are started: the
 * burst of held requests a cold start releases at once is not a trend worth another boot.
 */
export const SCALE_UP_AFTER_MS = 3000;

export interface AutoscaleDecision {
  state: NonNullable<ServiceStatus["autoscale"]>;
  /** Set when the machine count changed, saying why (for an event). */
  change?: string;
}

/**
 * How many machines a min/max service should have now. Up at once (a held request wakes a
 * service at zero immediately); down only after the cooldown, and to zero only after a whole
 * idle period without a request. Pure, so every rule is unit-tested.
 */
export function autoscale(spec: ServiceSpec, previous: ServiceStatus["autoscale"], load: ServiceLoad | undefined, now: number): AutoscaleDecision {
  const min = spec.min ?? 0;
  const max = Math.max(spec.max ?? min, min);
  const { targetInFlight, cooldownSeconds, idleSeconds } = { ...AUTOSCALE_DEFAULTS, ...spec.autoscale };
  // Whole seconds: a busy service then rewrites its status at most once a second.
  const nowIso = new Date(Math.floor(now / 1000) * 1000).toISOString();
  const current = previous?.desired ?? min;
  const inFlight = load?.inFlight ?? 0;
  const waiting = load?.waiting ?? 0;
  const lastActiveAt = inFlight + waiting > 0 ? nowIso : (previous?.lastActiveAt ?? nowIso);
  // Held requests wait for the machine being started, however many there are: a cold start
  // boots one machine, not a herd. Scaling beyond that follows requests actually in flight.
  let wanted = Math.ceil(inFlight / targetInFlight);
  if (waiting > 0) wanted = Math.max(wanted, 1);
  wanted = Math.min(max, Math.max(min, wanted));

  const pressureSince = wanted > current ? (previous?.pressureSince ?? nowIso) : undefined;
  const keep: AutoscaleDecision = {
    state: { desired: Math.min(max, Math.max(min, current)), lastScaleAt: previous?.lastScaleAt ?? nowIso, lastActiveAt, ...(pressureSince ? { pressureSince } : {}) },
  };
  // From zero at once (a request is waiting); beyond that only once the pressure has lasted.
  if (wanted > current && (current === 0 || now - Date.parse(pressureSince!) >= SCALE_UP_AFTER_MS)) {
    const why = current === 0 ? `${waiting} request${waiting === 1 ? " is" : "s are"} waiting` : `${inFlight} requests in flight, target ${targetInFlight} per machine`;
    return { state: { desired: wanted, lastScaleAt: nowIso, lastActiveAt }, change: `scaled up from ${current} to ${wanted}: ${why}` };
  }
  if (wanted < current) {
    const sinceScale = now - Date.parse(keep.state.lastScaleAt);
    const idleFor = now - Date.parse(lastActiveAt);
    if (wanted === 0 && idleFor < idleSeconds * 1000) wanted = Math.min(current, Math.max(1, wanted));
    if (wanted < current && (wanted === 0 || sinceScale >= cooldownSeconds * 1000)) {
      const why = wanted === 0 ? `no request for ${idleSeconds}s` : `${inFlight} requests in flight, target ${targetInFlight} per machine`;
      return { state: { desired: wanted, lastScaleAt: nowIso, lastActiveAt }, change: `scaled down from ${current} to ${wanted}: ${why}` };
    }
  }
  return keep;
}
