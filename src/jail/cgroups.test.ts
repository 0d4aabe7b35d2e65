import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { CgroupHost } from "./cgroups.ts";

// A cgroup filesystem made of plain files: what Pith writes is checked; the kernel's part is in
// test/e2e/jail.test.ts (v1 here; no host of this project has a v2 hierarchy with controllers).
async function fakeCgroupRoot(layout: "v1" | "v2"): Promise<string> {
  const root = await mkdtemp(join(tmpdir(), "pith-cgroups-"));
  if (layout === "v2") {
    await writeFile(join(root, "cgroup.controllers"), "cpuset cpu io memory pids\n");
    await writeFile(join(root, "cgroup.subtree_control"), "");
  } else {
    for (const c of ["memory", "pids", "cpu,cpuacct"]) {
      await mkdir(join(root, c, "agents"), { recursive: true });
      await writeFile(join(root, c, "cgroup.procs"), "");
    }
  }
  return root;
}

const limits = { memoryBytes: 512 * 1024 * 1024, pids: 256, cpus: 1.5 };
const selfV1 = [
  { hierarchy: "4", controllers: ["memory"], path: "/agents" },
  { hierarchy: "8", controllers: ["pids"], path: "/" },
  { hierarchy: "1", controllers: ["cpu", "cpuacct"], path: "/" },
];

test("v1: one cgroup per hierarchy, under the one Pith runs in, with each limit", async (t) => {
  const root = await fakeCgroupRoot("v1");
  t.after(() => rm(root, { recursive: true, force: true }));
  const host = CgroupHost.detect(root, selfV1);
  assert.ok(host instanceof CgroupHost && host.version === 1);
  const cg = await host.create("web-1.970001", limits);
  assert.deepEqual(cg.dirs, [join(root, "memory/agents/pith/web-1.970001"), join(root, "pids/pith/web-1.970001"), join(root, "cpu,cpuacct/pith/web-1.970001")]);
  assert.equal(await readFile(join(cg.dirs[0]!, "memory.limit_in_bytes"), "utf8"), String(limits.memoryBytes));
  assert.equal(await readFile(join(cg.dirs[1]!, "pids.max"), "utf8"), "256");
  assert.equal(await readFile(join(cg.dirs[2]!, "cpu.cfs_quota_us"), "utf8"), "150000");
  assert.equal(await readFile(join(cg.dirs[2]!, "cpu.cfs_period_us"), "utf8"), "100000");
  assert.equal(cg.path, "/agents/pith/web-1.970001");
  // An adopted machine's cgroup is read back from its /proc/PID/cgroup.
  const found = host.fromProcFile("8:pids:/pith/web-1.970001\n4:memory:/agents/pith/web-1.970001\n1:cpu,cpuacct:/pith/web-1.970001\n0::/\n");
  assert.deepEqual(found?.dirs, cg.dirs);
  assert.equal(host.fromProcFile("8:pids:/\n4:memory:/agents\n1:cpu,cpuacct:/\n"), undefined, "a process outside Pith's cgroups has none");
  await writeFile(join(cg.dirs[0]!, "memory.oom_control"), "oom_kill_disable 0\nunder_oom 0\noom_kill 2\n");
  assert.equal(await host.oomKills(cg), 2);
  assert.deepEqual(await host.machineNames(), ["web-1.970001"]);
  // A directory the kernel would refuse (here: not empty) is left; an empty one in every hierarchy goes.
  await host.removeIfEmpty("web-1.970001");
  assert.deepEqual(await host.machineNames(), ["web-1.970001"]);
  const left = await host.create("gone.970002", limits);
  for (const dir of left.dirs) for (const f of await readdir(dir)) await rm(join(dir, f));
  await host.removeIfEmpty("gone.970002");
  assert.ok(left.dirs.every((d) => !existsSync(d)), "an empty machine cgroup is removed from every hierarchy");
});

test("v2: one cgroup under <root>/pith with the controllers enabled on the way down", async (t) => {
  const root = await fakeCgroupRoot("v2");
  t.after(() => rm(root, { recursive: true, force: true }));
  const host = CgroupHost.detect(root, []);
  assert.ok(host instanceof CgroupHost && host.version === 2);
  const cg = await host.create("web-1.970001", limits);
  assert.deepEqual(cg.dirs, [join(root, "pith/web-1.970001")]);
  assert.equal(await readFile(join(root, "cgroup.subtree_control"), "utf8"), "+memory +pids +cpu");
  assert.equal(await readFile(join(root, "pith/cgroup.subtree_control"), "utf8"), "+memory +pids +cpu");
  assert.equal(await readFile(join(cg.dirs[0]!, "memory.max"), "utf8"), String(limits.memoryBytes));
  assert.equal(await readFile(join(cg.dirs[0]!, "cpu.max"), "utf8"), "150000 100000");
  assert.equal(await readFile(join(cg.dirs[0]!, "pids.max"), "utf8"), "256");
  assert.deepEqual(host.fromProcFile("0::/pith/web-1.970001\n")?.dirs, cg.dirs);
  await writeFile(join(cg.dirs[0]!, "memory.events"), "low 0\nhigh 0\nmax 3\noom 1\noom_kill 1\n");
  assert.equal(await host.oomKills(cg), 1);
  await host.remove(cg).catch(() => {}); // a plain directory with files is not removable like a cgroup
});

test("a v2 hierarchy without the controllers, or a v1 one missing a controller, is reported", async (t) => {
  const root = await mkdtemp(join(tmpdir(), "pith-cgroups-"));
  t.after(() => rm(root, { recursive: true, force: true }));
  await writeFile(join(root, "cgroup.controllers"), "\n");
  assert.match((CgroupHost.detect(root, []) as { missing: string }).missing, /lacks the memory, pids, cpu controller/);
  const v1 = await fakeCgroupRoot("v1");
  t.after(() => rm(v1, { recursive: true, force: true }));
  await rm(join(v1, "pids"), { recursive: true });
  assert.match((CgroupHost.detect(v1, selfV1) as { missing: string }).missing, /no cgroup v1 hierarchy for pids/);
});

for (const layout of ["v1", "v2"] as const) {
  test(`${layout}: a machine weighs its cores' worth of tasks, and Pith's parent the sum of its machines`, async (t) => {
    const root = await fakeCgroupRoot(layout);
    t.after(() => rm(root, { recursive: true, force: true }));
    const host = CgroupHost.detect(root, layout === "v1" ? selfV1 : []);
    assert.ok(host instanceof CgroupHost);
    const [file, task] = layout === "v1" ? ["cpu.shares", 1024] : ["cpu.weight", 100];
    const cpuDir = (cg: { dirs: string[] }) => cg.dirs.at(-1)!;
    const parent = layout === "v1" ? join(root, "cpu,cpuacct/pith") : join(root, "pith");
    const weightOf = async (dir: string) => Number(await readFile(join(dir, file), "utf8"));

    const a = await host.create("a.970001", { ...limits, cpus: 2 });
    assert.equal(await weightOf(cpuDir(a)), 2 * task, "two cores' worth: what its busy threads would weigh outside a cgroup");
    assert.equal(await weightOf(parent), 2 * task);
    const b = await host.create("b.970002", limits);
    assert.equal(await weightOf(cpuDir(b)), 1.5 * task);
    assert.equal(await weightOf(parent), 3.5 * task, "the parent weighs both machines together");

    // A machine gone: the parent weighs only what is left, and never less than one task.
    for (const dir of b.dirs) for (const f of await readdir(dir)) await rm(join(dir, f));
    await host.remove(b);
    assert.equal(await weightOf(parent), 2 * task);
    for (const dir of a.dirs) for (const f of await readdir(dir)) await rm(join(dir, f));
    await host.remove(a);
    assert.equal(await weightOf(parent), task);
  });
}
