import { closeSync, openSync } from "node:fs";
import { mkdir, readFile, rm } from "node:fs/promises";
import { setTimeout as sleep } from "node:timers/promises";
import { join } from "node:path";
import { systemError } from "../../shared/errors.ts";
import { execFile } from "../../shared/exec.ts";
import { pithRoot } from "../../shared/paths.ts";
import { ensureStaticCProgram } from "../../shared/static-c-program.ts";
import type { Hypervisor, Machine, MachineSpec, PortForward } from "../hypervisor.ts";
import { chooseAccelerator, KVM_PROBE_TIMEOUT_MS, recordVerdict } from "./accelerator.ts";
import { qemuArgv, type Accelerator, type EgressRoute, type QemuMachineSpec } from "./qemu-argv.ts";
import { QEMU_BINARY } from "./qemu-binary.ts";
import { discoverMachines, inspectProcesses } from "./qemu-discovery.ts";
import { checkMachineEnv } from "./machine-env.ts";
import { baseConfigLines, QemuMachine } from "./qemu-machine.ts";
import { QmpClient } from "./qmp-client.ts";
import { adoptVm, spawnVm, type VmProcess } from "./vm-process.ts";
import { freeLoopbackPort } from "../../shared/free-port.ts";

/** qboot: a firmware that does nothing but load the kernel, from Debian's qemu package. */
export const QBOOT_FIRMWARE = "/usr/share/qemu/qboot.rom";

/** Guest addresses for declared egress destinations: 10.0.2.100, .101, ... */
const EGRESS_BASE = 100;

/** How far behind a snapshot source's clock runs (see MachineSpec.snapshotSource). */
const SNAPSHOT_SOURCE_CLOCK_OFFSET_MS = -2 * 60 * 60 * 1000;
/** Loading a snapshot takes a fraction of a second; this is for a host under heavy load. */
const RESTORE_TIMEOUT_MS = 30_000;

export class QemuHypervisor implements Hypervisor {
  readonly name = "qemu";
  private qemuVersion: string | undefined;

  /** `owner` scopes recover(): each manager of machines (pith run, an agent) sees only its own. */
  constructor(private readonly options: { owner: string } = { owner: "run" }) {
    if (!/^[a-z0-9][a-z0-9.-]*$/.test(options.owner)) throw new Error(`invalid machine owner "${options.owner}"`);
  }

  async start(spec: MachineSpec): Promise<Machine> {
    checkMachineEnv(spec.id, spec.env);
    const version = (this.qemuVersion ??= await detectQemuVersion());
    const choice = await chooseAccelerator(version);
    // A snapshot restores only under the accelerator it was saved with, which the same verdict chose.
    if (spec.restoreFrom) return this.launch(spec, choice.accelerator);
    if (!choice.probe) return this.launch(spec, choice.accelerator);

    const probe = await this.launch(spec, "kvm", KVM_PROBE_TIMEOUT_MS).catch(() => undefined);
    if (probe) {
      await recordVerdict(version, "kvm", "a KVM guest reached init");
      return probe;
    }
    await recordVerdict(version, "tcg", `a KVM guest did not reach init within ${KVM_PROBE_TIMEOUT_MS} ms`);
    return this.launch(spec, "tcg");
  }

  async snapshotTag(): Promise<string> {
    const version = (this.qemuVersion ??= await detectQemuVersion());
    return `${version} ${(await chooseAccelerator(version)).accelerator}`;
  }

  /**
   * Re-attaches to this owner's machines running on the host (an agent after a restart). With
   * saved handles (pids), only those processes are checked, like Nomad's RecoverTask; without
   * them, every process is, so machines are found even when the saved state is gone.
   */
  async recover(pids?: number[]): Promise<Machine[]> {
    const machines: Machine[] = [];
    const candidates = pids ? await inspectProcesses(pids) : await discoverMachines();
    for (const found of candidates.filter((m) => m.owner === this.options.owner)) {
      const machine = new QemuMachine({
        machineId: found.machineId,
        accelerator: found.accelerator,
        process: adoptVm(found.pid),
        ports: found.forwards.map((f) => ({ ...f, url: `http://127.0.0.1:${f.hostPort}/` })),
        consoleLog: found.consoleLog,
        controlSocket: found.controlSocket,
        qmpSocket: found.qmpSocket,
        config: [],
        readyTimeoutMs: 60_000,
        requestedAt: performance.now(),
      });
      await machine.attach();
      machines.push(machine);
    }
    return machines;
  }

  private async launch(spec: MachineSpec, accelerator: Accelerator, initTimeoutMs?: number): Promise<QemuMachine> {
    const requestedAt = performance.now();
    const { image } = spec;
    await rm(spec.stateDir, { recursive: true, force: true });
    await mkdir(spec.stateDir, { recursive: true });

    const ports: PortForward[] = [];
    for (const { port } of image.capabilities.listen) {
      const hostPort = spec.hostPorts?.[port] ?? (await freeLoopbackPort());
      ports.push({ guestPort: port, hostPort, url: `http://127.0.0.1:${hostPort}/` });
    }
    const egress: EgressRoute[] = [];
    const egressEnv: Record<string, string> = {};
    if (image.capabilities.egress.length > 0) {
      const relay = await ensureStaticCProgram("pith-egress-relay", join(pithRoot(), "src/hypervisor/qemu/egress-relay.c"));
      image.capabilities.egress.forEach(({ host, port }, i) => {
        const guestAddress = `10.0.2.${EGRESS_BASE + i}`;
        egress.push({ guestAddress, guestPort: port, relay: [relay, host, String(port)] });
        egressEnv[`${host}:${port}`] = `${guestAddress}:${port}`;
      });
    }
    const hasNetwork = image.capabilities.listen.length > 0 || image.capabilities.egress.length > 0;

    const qemuSpec: QemuMachineSpec = {
      machineId: spec.id,
      owner: this.options.owner,
      accelerator,
      memoryMiB: image.capabilities.memoryMiB,
      vcpus: image.capabilities.vcpus,
      firmware: QBOOT_FIRMWARE,
      kernel: spec.kernel,
      initrd: spec.initrd,
      ...(spec.disk ? { disk: spec.disk } : {}),
      kernelArgs: [],
      consoleLog: join(spec.stateDir, "console.log"),
      controlSocket: join(spec.stateDir, "control.sock"),
      qmpSocket: join(spec.stateDir, "qmp.sock"),
      pidFile: join(spec.stateDir, "qemu.pid"),
      ...(hasNetwork ? { network: { forwards: ports.map((p) => ({ hostPort: p.hostPort, guestPort: p.guestPort })), egress } } : {}),
    };
    const env: Record<string, string> = {
      PITH_MACHINE_ID: spec.id,
      PITH_NAME: image.name,
      PITH_IMAGE: image.digest,
      PITH_LISTEN: image.capabilities.listen.map((l) => l.port).join(","),
      PITH_EGRESS: JSON.stringify(egressEnv),
      ...spec.env,
    };
    const envLines = Object.entries(env).map(([k, v]) => `env ${k}=${v}`);
    if (spec.restoreFrom) return this.restore(spec, spec.restoreFrom, qemuSpec, ports, [...baseConfigLines(), ...envLines, "restored"], requestedAt);
    const config = [...baseConfigLines(spec.snapshotSource ? SNAPSHOT_SOURCE_CLOCK_OFFSET_MS : 0), ...envLines, "end"];

    const machine = new QemuMachine({
      machineId: spec.id,
      accelerator,
      process: spawnVm(QEMU_BINARY, qemuArgv(qemuSpec), join(spec.stateDir, "qemu.log")),
      ports,
      consoleLog: qemuSpec.consoleLog,
      controlSocket: qemuSpec.controlSocket,
      qmpSocket: qemuSpec.qmpSocket,
      config,
      readyTimeoutMs: image.readyTimeoutMs,
      requestedAt,
    });
    if (!(await machine.attach(initTimeoutMs))) {
      await machine.stop(0);
      const exit = await machine.whenExited();
      throw new Error(`machine ${spec.id} did not start under ${accelerator}: ${exit.reason}`);
    }
    return machine;
  }

  /**
   * Starts QEMU paused on the snapshot, waits until it has loaded, queues the machine's new
   * identity for init (read the moment the guest runs), then lets it run. Any failure kills
   * QEMU and rejects: the caller boots instead.
   */
  private async restore(spec: MachineSpec, file: string, qemuSpec: QemuMachineSpec, ports: PortForward[], config: string[], requestedAt: number): Promise<QemuMachine> {
    let fd: number;
    try {
      fd = openSync(file, "r");
    } catch (e) {
      throw systemError("SNAPSHOT_UNREADABLE", `cannot open snapshot ${file}: ${(e as Error).message}`);
    }
    let vm: VmProcess;
    try {
      vm = spawnVm(QEMU_BINARY, qemuArgv({ ...qemuSpec, incomingFd: 3 }), join(spec.stateDir, "qemu.log"), [fd]);
    } finally {
      closeSync(fd); // QEMU has its own copy
    }
    const machine = new QemuMachine({
      machineId: spec.id,
      accelerator: qemuSpec.accelerator,
      process: vm,
      ports,
      consoleLog: qemuSpec.consoleLog,
      controlSocket: qemuSpec.controlSocket,
      qmpSocket: qemuSpec.qmpSocket,
      config,
      readyTimeoutMs: spec.image.readyTimeoutMs,
      requestedAt,
      restored: true,
    });
    let qmp: QmpClient | undefined;
    try {
      const exited = vm.exited.then(() => {
        throw new Error("QEMU exited while loading it");
      });
      exited.catch(() => {}); // raced below only until the machine runs
      qmp = await Promise.race([QmpClient.connect(qemuSpec.qmpSocket, RESTORE_TIMEOUT_MS), exited]);
      const deadline = performance.now() + RESTORE_TIMEOUT_MS;
      for (;;) {
        const state = await Promise.race([qmp.execute<{ status?: string; "error-desc"?: string }>("query-migrate"), exited]);
        if (state.status === "completed") break;
        if (state.status === "failed") throw new Error(state["error-desc"] ?? "loading failed");
        if (performance.now() > deadline) throw new Error(`not loaded within ${RESTORE_TIMEOUT_MS / 1000}s`);
        await sleep(2);
      }
      if (!(await machine.attach())) throw new Error("its control channel did not open");
      await qmp.execute("cont");
      machine.setRestoreTime(performance.now() - requestedAt);
    } catch (e) {
      vm.kill("SIGKILL");
      await vm.exited;
      const log = (await readFile(join(spec.stateDir, "qemu.log"), "utf8").catch(() => "")).trim().split("\n").slice(-2).join(" ");
      throw systemError("SNAPSHOT_RESTORE_FAILED", `cannot restore machine ${spec.id} from ${file}: ${(e as Error).message}${log ? ` (QEMU: ${log})` : ""}`);
    } finally {
      qmp?.close();
    }
    return machine;
  }
}

async function detectQemuVersion(): Promise<string> {
  const { stdout } = await execFile(QEMU_BINARY, ["--version"], { code: "QEMU_MISSING" });
  return stdout.split("\n")[0] ?? "unknown";
}

