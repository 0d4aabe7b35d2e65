import assert from "node:assert/strict";
import { test } from "node:test";
import { autoscale } from "./autoscale.ts";

const t0 = Date.parse("2026-01-01T00:00:00Z");
const at = (s: number) => t0 + s * 1000;
const spec = { image: "x", min: 0, max: 4, autoscale: { targetInFlight: 2, cooldownSeconds: 10, idleSeconds: 30 } };

test("a request held at zero wakes the service at once", () => {
  const d = autoscale(spec, { desired: 0, lastScaleAt: new Date(at(0)).toISOString() }, { inFlight: 0, waiting: 1 }, at(1));
  assert.equal(d.state.desired, 1);
  assert.match(d.change!, /from 0 to 1: 1 request is waiting/);
});

test("a crowd of held requests at zero boots one machine, not a herd", () => {
  const d = autoscale(spec, { desired: 0, lastScaleAt: new Date(at(0)).toISOString() }, { inFlight: 0, waiting: 20 }, at(1));
  assert.equal(d.state.desired, 1);
  assert.match(d.change!, /20 requests are waiting/);
});

test("scales up to cover in-flight requests at the target concurrency, within max, once the load has lasted", () => {
  const prev = { desired: 1, lastScaleAt: new Date(at(0)).toISOString() };
  const first = autoscale(spec, prev, { inFlight: 5, waiting: 0 }, at(1));
  assert.equal(first.state.desired, 1, "a moment of load is not enough");
  assert.equal(first.state.pressureSince, new Date(at(1)).toISOString());
  assert.equal(autoscale(spec, first.state, { inFlight: 5, waiting: 0 }, at(4)).state.desired, 3);
  assert.equal(autoscale(spec, first.state, { inFlight: 50, waiting: 0 }, at(4)).state.desired, 4);
  // Pressure that goes away resets the clock.
  const calm = autoscale(spec, first.state, { inFlight: 1, waiting: 0 }, at(2));
  assert.equal(calm.state.pressureSince, undefined);
});

test("scales down only after the cooldown", () => {
  const prev = { desired: 3, lastScaleAt: new Date(at(0)).toISOString(), lastActiveAt: new Date(at(0)).toISOString() };
  assert.equal(autoscale(spec, prev, { inFlight: 2, waiting: 0 }, at(5)).state.desired, 3);
  const later = autoscale(spec, prev, { inFlight: 2, waiting: 0 }, at(11));
  assert.equal(later.state.desired, 1);
  assert.match(later.change!, /scaled down from 3 to 1/);
});

test("to zero only after a whole idle period without requests", () => {
  const prev = { desired: 1, lastScaleAt: new Date(at(0)).toISOString(), lastActiveAt: new Date(at(0)).toISOString() };
  assert.equal(autoscale(spec, prev, undefined, at(29)).state.desired, 1);
  const idle = autoscale(spec, prev, undefined, at(31));
  assert.equal(idle.state.desired, 0);
  assert.match(idle.change!, /no request for 30s/);
  // Activity resets the idle clock.
  const active = autoscale(spec, prev, { inFlight: 1, waiting: 0 }, at(31));
  assert.equal(active.state.desired, 1);
  assert.equal(active.state.lastActiveAt, new Date(at(31)).toISOString());
});

test("never below min", () => {
  const d = autoscale({ ...spec, min: 2 }, { desired: 2, lastScaleAt: new Date(at(0)).toISOString() }, undefined, at(1000));
  assert.equal(d.state.desired, 2);
  assert.equal(d.change, undefined);
});
