import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { FakeRoutes } from "../test-support.ts";
import { INITIAL_POOL, SLOTS_PER_BACKEND } from "./config.ts";
import { SlotPlan } from "./slot-plan.ts";

const MAP = "/run/pith-haproxy-test/hosts.map";

/** A plan fed by FakeRoutes, as the engine feeds it; warnings collected. */
function planFor(routes: FakeRoutes): { plan: SlotPlan; warnings: string[] } {
  const warnings: string[] = [];
  const plan = new SlotPlan({ routedService: (host) => routes.lookup(host, "/")?.service, warn: (_key, message) => warnings.push(message) });
  routes.onChange((service, route) => plan.routeChanged(service, route));
  return { plan, warnings };
}

/** Computes what HAProxy should have, the commands to get there, and records them as sent. */
function step(plan: SlotPlan): { fill: string[]; map: string[]; drain: string[] } {
  const desired = plan.desired();
  const changes = plan.changes(desired, MAP);
  plan.applied(desired);
  return changes;
}

describe("SlotPlan", () => {
  test("a service gets a backend, its machines slots in order, and its .localhost host once it has a ready machine", () => {
    const routes = new FakeRoutes();
    const { plan, warnings } = planFor(routes);
    routes.set("web", [], { minZero: true });
    assert.deepEqual(step(plan), { fill: [], map: [], drain: [] }, "no machine: nothing for HAProxy, the fallback holds");

    routes.set("web", ["http://127.0.0.1:4001/", "http://127.0.0.1:4002/"]);
    assert.deepEqual(step(plan), {
      fill: [
        "set server pith_b0/s0 addr 127.0.0.1 port 4001",
        "set server pith_b0/s0 state ready",
        "set server pith_b0/s1 addr 127.0.0.1 port 4002",
        "set server pith_b0/s1 state ready",
      ],
      map: [`add map ${MAP} web.localhost pith_b0`],
      drain: [],
    });
    assert.deepEqual(step(plan), { fill: [], map: [], drain: [] }, "nothing changed, nothing sent");
    assert.deepEqual(warnings, []);
  });

  test("a machine that leaves empties its slot, one that stays keeps it, a new one takes the free slot", () => {
    const routes = new FakeRoutes();
    const { plan } = planFor(routes);
    routes.set("api", ["http://127.0.0.1:5001/", "http://127.0.0.1:5002/"]);
    step(plan);
    routes.set("api", ["http://127.0.0.1:5002/"]);
    assert.deepEqual(step(plan), { fill: [], map: [], drain: ["set server pith_b0/s0 state maint"] });
    routes.set("api", ["http://127.0.0.1:5002/", "http://127.0.0.1:5003/"]);
    assert.deepEqual(step(plan).fill, ["set server pith_b0/s0 addr 127.0.0.1 port 5003", "set server pith_b0/s0 state ready"]);
    assert.deepEqual(plan.appliedState.slots, new Map([["pith_b0/s0", "127.0.0.1:5003"], ["pith_b0/s1", "127.0.0.1:5002"]]));
  });

  test("the last machine leaving takes the host out of the map in the same step as it drains the slot", () => {
    const routes = new FakeRoutes();
    const { plan } = planFor(routes);
    routes.set("cold", ["http://127.0.0.1:6001/"], { minZero: true });
    step(plan);
    routes.set("cold", [], { minZero: true });
    assert.deepEqual(step(plan), { fill: [], map: [`del map ${MAP} cold.localhost`], drain: ["set server pith_b0/s0 state maint"] });
  });

  test("a learned host maps while the route source routes it to that service; a deleted service frees its backend after its hosts are gone", () => {
    const routes = new FakeRoutes();
    const { plan } = planFor(routes);
    const web = routes.set("web", ["http://127.0.0.1:4001/"], { hosts: ["www.example.com"] });
    routes.set("blog", ["http://127.0.0.1:4002/"]);
    assert.equal(plan.learn("WWW.Example.com:8080", web), true);
    assert.equal(plan.learn("www.example.com", web), false, "known already");
    assert.deepEqual(step(plan).map.sort(), [`add map ${MAP} blog.localhost pith_b1`, `add map ${MAP} web.localhost pith_b0`, `add map ${MAP} www.example.com pith_b0`]);

    // The host moves to blog in the route source (no route change for web): it leaves web's backend.
    routes.set("web", ["http://127.0.0.1:4001/"]);
    routes.set("blog", ["http://127.0.0.1:4002/"], { hosts: ["www.example.com"] });
    assert.deepEqual(step(plan).map, [`del map ${MAP} www.example.com`]);

    routes.delete("web");
    assert.deepEqual(step(plan), { fill: [], map: [`del map ${MAP} web.localhost`], drain: ["set server pith_b0/s0 state maint"] });
    // Blog has pith_b1; the 14 never used go first, then web's, free again: no growth.
    for (let i = 0; i < INITIAL_POOL - 1; i++) routes.set(`shop${i}`, [`http://127.0.0.1:${4100 + i}/`]);
    assert.equal(plan.needsGrowth, false);
    assert.equal(plan.desired().map.get(`shop${INITIAL_POOL - 2}.localhost`), "pith_b0");
  });

  test("nothing that is not a plain host name or a loopback endpoint gets near a command", () => {
    const routes = new FakeRoutes();
    const { plan, warnings } = planFor(routes);
    const hosts = ["a b.example.com", "x.example.com\nset server pith_b0/s0 addr 10.0.0.1 port 80", "semi;colon.example.com", "[::1]:8080"];
    const web = routes.set("web", ["http://127.0.0.1:4001/", "http://10.1.2.3:8080/", "http://[fe80::1]:8080/"], { hosts });
    routes.set("odd service", ["http://127.0.0.1:4002/"]);
    for (const host of hosts) assert.equal(plan.learn(host, web), false, host);
    const { fill, map } = step(plan);
    assert.deepEqual(map, [`add map ${MAP} web.localhost pith_b0`]);
    assert.deepEqual(fill.filter((c) => c.includes(" addr ")), ["set server pith_b0/s0 addr 127.0.0.1 port 4001", "set server pith_b1/s0 addr 127.0.0.1 port 4002"]);
    // Why each is refused is backend-address.ts's to say; here, that it is refused by name.
    assert.ok(warnings.some((w) => /machine web-1 gets no HAProxy slot: 10\.1\.2\.3 /.test(w)), JSON.stringify(warnings));
    assert.ok(warnings.some((w) => /machine web-2 gets no HAProxy slot: fe80::1 /.test(w)), JSON.stringify(warnings));
    assert.ok(warnings.some((w) => /"odd service\.localhost" stays with Pith's proxy/.test(w)), JSON.stringify(warnings));
  });

  test("more machines than slots: the rest get none, and a warning", () => {
    const routes = new FakeRoutes();
    const { plan, warnings } = planFor(routes);
    routes.set("big", Array.from({ length: SLOTS_PER_BACKEND + 2 }, (_, i) => `http://127.0.0.1:${7000 + i}/`));
    assert.equal(plan.desired().slots.size, SLOTS_PER_BACKEND);
    assert.equal(warnings.filter((w) => /more than 32 ready machines/.test(w)).length, 2);
  });

  test("more services than backends: growth doubles the pool, every service gets a backend, and the files carry it all", () => {
    const routes = new FakeRoutes();
    const { plan } = planFor(routes);
    for (let i = 0; i < INITIAL_POOL; i++) routes.set(`s${i}`, [`http://127.0.0.1:${8000 + i}/`]);
    assert.equal(plan.needsGrowth, false);
    routes.set("one-more", ["http://127.0.0.1:8100/"]);
    assert.equal(plan.needsGrowth, true);
    plan.grow();
    assert.equal(plan.needsGrowth, false);
    const files = plan.filesState();
    assert.equal(files.poolSize, INITIAL_POOL * 2);
    assert.equal(files.slots.get(`pith_b${INITIAL_POOL}`)?.get(0)?.port, 8100);
    assert.equal(files.map.get("one-more.localhost"), `pith_b${INITIAL_POOL}`);
    assert.deepEqual(step(plan), { fill: [], map: [], drain: [] }, "what the files carry counts as applied");
  });

  test("load: HAProxy's sessions on a service's backend add to the fallback's own counts", () => {
    const routes = new FakeRoutes();
    const { plan } = planFor(routes);
    routes.set("web", ["http://127.0.0.1:4001/", "http://127.0.0.1:4002/"]);
    routes.set("idle", []);
    const load = plan.load({ web: { inFlight: 1, waiting: 2, backends: 2 } }, new Map([["pith_b0", 5]]));
    assert.deepEqual(load, { web: { inFlight: 6, waiting: 2, backends: 2 }, idle: { inFlight: 0, waiting: 0, backends: 0 } });
  });
});
