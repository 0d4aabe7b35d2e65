import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtemp, readdir, readFile, readlink, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, test } from "node:test";
import type { Machine, PortForward } from "../../src/hypervisor/hypervisor.ts";
import { QemuHypervisor } from "../../src/hypervisor/qemu/qemu-hypervisor.ts";
import { inspectProcesses } from "../../src/hypervisor/qemu/qemu-discovery.ts";
import { isAlive } from "../../src/shared/file-lock.ts";
import { pithRoot } from "../../src/shared/paths.ts";
import { appImage } from "../support/images.ts";
import { httpGet, missingForMachines, startMachine } from "../support/machines.ts";

const skip = missingForMachines();

describe("examples/static-c on QEMU", { skip, timeout: 600_000 }, () => {
  test("boots, becomes ready, serves HTTP, and stops gracefully", async (t) => {
    execFileSync("make", ["-s", "-C", "examples/static-c"]);
    const image = await appImage("examples/static-c");
    const machine = await startMachine(t, image);
    const timings = await machine.whenReady();
    assert.ok(timings.readyMs! > 0 && timings.kernelMs! > 0, `timings recorded: ${JSON.stringify(timings)}`);
    const { status, body } = await httpGet(machine.ports[0]!.url);
    assert.equal(status, 200);
    assert.match(body, /^hello from static-c \(request 1\)/);

    const helper = await netHelperOf(machine);
    const exit = await machine.stop(5000);
    assert.equal(exit.code, 0, exit.reason);
    assert.match(await readFile(machine.consoleLog, "utf8"), /static-c: stopping after 1 requests/);
    assert.equal(isAlive(helper.pid), false, "the network helper ended with its machine");
  });

  test("a port the image did not declare cannot be reached from the host", async (t) => {
    const image = await appImage("examples/static-c");
    // The app listens on 9090 instead of its declared 8080: nothing forwards to 9090.
    const machine = await startMachine(t, image, { env: { PORT: "9090" } });
    await machine.whenReady();
    const helper = await netHelperOf(machine);
    assert.deepEqual(helper.forwards, [{ address: "127.0.0.1", hostPort: machine.ports[0]!.hostPort, guestPort: 8080 }]);
    assert.deepEqual(await listeningTcp(helper.pid), [`127.0.0.1:${machine.ports[0]!.hostPort}`], "the one declared port, on loopback only");
    // The declared port's forward finds nothing listening behind it: no HTTP answer comes back.
    await assert.rejects(httpGet(machine.ports[0]!.url, 3000));
  });

  test("a machine whose network helper dies is failed, with the reason", async (t) => {
    const machine = await startMachine(t, await appImage("examples/static-c"));
    await machine.whenReady();
    process.kill((await netHelperOf(machine)).pid, "SIGKILL");
    const exit = await machine.whenExited();
    assert.equal(exit.code, undefined);
    assert.match(exit.reason, /^network helper exited: killed by SIGKILL/);
  });
});

test("after a crash of its manager, a re-adopted machine knows its forwards and still fails when its network helper dies", { skip, timeout: 300_000 }, async (t) => {
  const image = await appImage("examples/static-c");
  const stateDir = await mkdtemp(join(tmpdir(), "pith-machine-"));
  const script = join(stateDir, "manager.mts");
  // A manager that starts the machine and then dies without stopping it, as a crashed agent would.
  await writeFile(script, [
    `import { QemuHypervisor } from ${JSON.stringify(join(pithRoot(), "src/hypervisor/qemu/qemu-hypervisor.ts"))};`,
    `import { bootFiles, resolveImage } from ${JSON.stringify(join(pithRoot(), "src/image/image-store.ts"))};`,
    `const image = await resolveImage(${JSON.stringify(image.record.digest)});`,
    `const m = await new QemuHypervisor({ owner: "test-crash" }).start({ id: "crash-1", stateDir: ${JSON.stringify(join(stateDir, "m"))}, image: image.record, ...(await bootFiles(image)) });`,
    "await m.whenReady();",
    "console.log(JSON.stringify(m.ports));",
    "process.exit(0);",
  ].join("\n"));
  const ports = JSON.parse(execFileSync(process.execPath, ["--import", "tsx", script], { encoding: "utf8" })) as PortForward[];
  const [adopted] = await new QemuHypervisor({ owner: "test-crash" }).recover();
  t.after(async () => {
    await adopted?.stop(1000);
    await rm(stateDir, { recursive: true, force: true });
  });
  assert.ok(adopted, "the machine outlived its manager");
  assert.deepEqual(adopted.ports, ports);
  assert.equal((await httpGet(adopted.ports[0]!.url)).status, 200);
  process.kill((await netHelperOf(adopted)).pid, "SIGKILL");
  const exit = await adopted.whenExited();
  assert.match(exit.reason, /^network helper exited: it is gone/);
});

async function netHelperOf(machine: Machine): Promise<{ pid: number; forwards: { hostPort: number; guestPort: number }[] }> {
  const [found] = await inspectProcesses([machine.pid]);
  assert.ok(found?.netHelper, `machine ${machine.id} has a running network helper`);
  return found.netHelper;
}

/** The TCP addresses a process listens on, from its descriptors and the kernel's socket table. */
async function listeningTcp(pid: number): Promise<string[]> {
  const inodes = new Set<string>();
  for (const fd of await readdir(`/proc/${pid}/fd`)) {
    const link = await readlink(`/proc/${pid}/fd/${fd}`).catch(() => "");
    const m = /^socket:\[(\d+)\]$/.exec(link);
    if (m) inodes.add(m[1]!);
  }
  const listening: string[] = [];
  for (const line of (await readFile(`/proc/${pid}/net/tcp`, "utf8")).split("\n").slice(1)) {
    const f = line.trim().split(/\s+/);
    if (f[3] !== "0A" || !inodes.has(f[9]!)) continue;
    const [ip, port] = f[1]!.split(":");
    listening.push(`${Buffer.from(ip!, "hex").reverse().join(".")}:${parseInt(port!, 16)}`);
  }
  return listening;
}
