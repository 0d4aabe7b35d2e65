import { mkdir, rm } from "node:fs/promises";
import { join } from "node:path";
import { execFile } from "../../shared/exec.ts";
import { pithRoot } from "../../shared/paths.ts";
import { ensureStaticCProgram } from "../../shared/static-c-program.ts";
import type { Hypervisor, Machine, MachineSpec, PortForward } from "../hypervisor.ts";
import { chooseAccelerator, KVM_PROBE_TIMEOUT_MS, recordVerdict } from "./accelerator.ts";
import { qemuArgv, type Accelerator, type EgressRoute, type QemuMachineSpec } from "./qemu-argv.ts";
import { QEMU_BINARY } from "./qemu-binary.ts";
import { discoverMachines, inspectProcesses } from "./qemu-discovery.ts";
import { baseConfigLines, QemuMachine } from "./qemu-machine.ts";
import { adoptVm, spawnVm } from "./vm-process.ts";
import { freeLoopbackPort } from "../../shared/free-port.ts";

/** qboot: a firmware that does nothing but load the kernel, from Debian's qemu package. */
export const QBOOT_FIRMWARE = "/usr/share/qemu/qboot.rom";

/** Guest addresses for declared egress destinations: 10.0.2.100, .101, ... */
const EGRESS_BASE = 100;

export class QemuHypervisor implements Hypervisor {
  readonly name = "qemu";
  private qemuVersion: string | undefined;

  /** `owner` scopes recover(): each manager of machines (pith run, an agent) sees only its own. */
  constructor(private readonly options: { owner: string } = { owner: "run" }) {
    if (!/^[a-z0-9][a-z0-9.-]*$/.test(options.owner)) throw new Error(`invalid machine owner "${options.owner}"`);
  }

  async start(spec: MachineSpec): Promise<Machine> {
    const version = (this.qemuVersion ??= await detectQemuVersion());
    const choice = await chooseAccelerator(version);
    if (!choice.probe) return this.launch(spec, choice.accelerator);

    const probe = await this.launch(spec, "kvm", KVM_PROBE_TIMEOUT_MS).catch(() => undefined);
    if (probe) {
      await recordVerdict(version, "kvm", "a KVM guest reached init");
      return probe;
    }
    await recordVerdict(version, "tcg", `a KVM guest did not reach init within ${KVM_PROBE_TIMEOUT_MS} ms`);
    return this.launch(spec, "tcg");
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
    const config = [...baseConfigLines(), ...Object.entries(env).map(([k, v]) => `env ${k}=${v}`), "end"];

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
}

async function detectQemuVersion(): Promise<string> {
  const { stdout } = await execFile(QEMU_BINARY, ["--version"], { code: "QEMU_MISSING" });
  return stdout.split("\n")[0] ?? "unknown";
}

