import { closeSync, existsSync, openSync } from "node:fs";
import { lstat, rm } from "node:fs/promises";
import { setTimeout as sleep } from "node:timers/promises";
import { join } from "node:path";
import { isPithError, systemError, userError } from "../../shared/errors.ts";
import { logTailText } from "../../shared/file-tail.ts";
import { execFile } from "../../shared/exec.ts";
import type { ClaimedIdentity, Hypervisor, Machine, MachineSpec, PortForward } from "../hypervisor.ts";
import { chooseAccelerator, KVM_PROBE_TIMEOUT_MS, recordVerdict } from "./accelerator.ts";
import { FORWARD_ADDRESS, startNetHelper, type EgressRoute } from "./net-helper.ts";
import { nodeAddressProblem } from "../../model/node-address.ts";
import { hostTscKhz } from "./host-tsc.ts";
import { qemuArgv, type Accelerator, type QemuMachineSpec } from "./qemu-argv.ts";
import { QEMU_BINARY } from "./qemu-binary.ts";
import { discoverMachines, inspectProcesses } from "./qemu-discovery.ts";
import { checkMachineEnv } from "./machine-env.ts";
import { baseConfigLines, type ClockAnchor, QemuMachine, type QemuMachineOptions, vmmSocket } from "./qemu-machine.ts";
import { QmpClient } from "./qmp-client.ts";
import { adoptVm, goneVm, spawnVm, type VmProcess } from "./vm-process.ts";
import { freeLoopbackPort } from "../../shared/free-port.ts";
import { Jailer, type MachineJail } from "../../jail/jailer.ts";
import { refuseVolumes } from "../../snapshot/machine-starter.ts";
import { ensurePrivateDir } from "../../shared/private-files.ts";

/** qboot: a firmware that does nothing but load the kernel, from Debian's qemu package. */
export const QBOOT_FIRMWARE = "/usr/share/qemu/qboot.rom";

/** Guest addresses for declared egress destinations: 10.0.2.100, .101, ... */
const EGRESS_BASE = 100;

/** How far behind a snapshot source's clock runs (see MachineSpec.snapshotSource). */
const SNAPSHOT_SOURCE_CLOCK_OFFSET_MS = -2 * 60 * 60 * 1000;
/**
 * How many times a snapshot source rehearses the restore before it is saved. Counted in guest
 * instructions TCG translated from `cont` to ready (hello-ts, bench README, cold-start): 154k
 * without; 78-90k after one (V8 still compiled code that runs only from the second notice on);
 * 64-71k after two (now V8's baseline compiler compiled the handshake's functions, as it does
 * after a few calls); 48-53k after three. Each costs the source a fraction of a second, once.
 */
const RESTORE_REHEARSALS = 3;
/**
 * A warm machine rehearses twice more after its warm-up, just before it is paused. Its QEMU ran
 * the handshake already (at its own restore), so the first is for the guest library's scavenge:
 * without it the warm-up's garbage was often collected on the claimed machine's first request
 * (claim to first byte 23-34 ms, with it 16-17 ms). The second runs the handshake as V8 left it
 * after the warm-up and the first (code compiled since, not yet translated by this QEMU): a claim
 * then made 100-140 new translation blocks before ready instead of 150-390 (warm-profile.ts,
 * bench/README.md, cold-start).
 */
export const WARM_REHEARSALS = 2;
/** Loading a snapshot takes a fraction of a second; this is for a host under heavy load. */
const RESTORE_TIMEOUT_MS = 30_000;
/** A restore waits for QEMU's monitor to appear: look often (QmpClient.connect's default is 20 ms). */
const QMP_RETRY_WHILE_RESTORING_MS = 2;

export class QemuHypervisor implements Hypervisor {
  readonly name = "qemu";
  private qemuVersion: string | undefined;

  /** `owner` scopes recover(): each manager of machines (pith run, an agent) sees only its own. */
  /** `unconfined` runs QEMU without the jail: only bench/jail uses it, to measure the jail's cost. */
  /**
   * `forwardAddress`: where listen ports are forwarded (an agent's --address); default loopback.
   * `tcgTranslationCacheMiB` and `freePageReporting` are density settings (see QemuMachineSpec); bench/density compares them.
   * `restoreRehearsals`: how many times a snapshot source rehearses the restore before it is
   * saved (QemuMachine.rehearseRestore), RESTORE_REHEARSALS when absent: only
   * bench/cold-start/snapshot-ab.ts sets it, to measure what the rehearsals save.
   */
  constructor(private readonly options: { owner: string; unconfined?: boolean; forwardAddress?: string; tcgTranslationCacheMiB?: number; freePageReporting?: boolean; restoreRehearsals?: number } = { owner: "run" }) {
    if (!/^[a-z0-9][a-z0-9.-]*$/.test(options.owner)) throw new Error(`invalid machine owner "${options.owner}"`);
    const problem = options.forwardAddress === undefined ? undefined : nodeAddressProblem(options.forwardAddress);
    if (problem) throw new Error(`invalid forward address: ${problem}`);
  }

  async start(spec: MachineSpec): Promise<Machine> {
    checkMachineEnv(spec.id, spec.env);
    const version = (this.qemuVersion ??= await detectQemuVersion());
    const choice = await chooseAccelerator(version);
    // A snapshot restores only under the accelerator it was saved with, which the same verdict chose.
    if (spec.restoreFrom) return this.launch(spec, choice.accelerator);
    if (!choice.probe) return this.launch(spec, choice.accelerator);

    const probe = await this.launch(spec, "kvm", KVM_PROBE_TIMEOUT_MS).catch((e: unknown) => {
      // A network that cannot start says nothing about KVM, and would fail under TCG too.
      if (isPithError(e) && e.code === "NET_HELPER_FAILED") throw e;
      return undefined;
    });
    if (probe) {
      await recordVerdict(version, "kvm", "a KVM guest reached init");
      return probe;
    }
    await recordVerdict(version, "tcg", `a KVM guest did not reach init within ${KVM_PROBE_TIMEOUT_MS} ms`);
    return this.launch(spec, "tcg");
  }

  async jailMissing(): Promise<string[]> {
    return [...(await Jailer.forHost()).support.missing];
  }

  async snapshotTag(): Promise<string> {
    const version = (this.qemuVersion ??= await detectQemuVersion());
    // "pith-net": since the network moved out of QEMU, a snapshot holds no slirp state; one saved
    // with QEMU's own user network would not load.
    return `${version} ${(await chooseAccelerator(version)).accelerator} pith-net`;
  }

  /**
   * Re-attaches to this owner's machines running on the host (an agent after a restart). With
   * saved handles (pids), only those processes are checked, like Nomad's RecoverTask; without
   * them, every process is, so machines are found even when the saved state is gone.
   */
  async recover(pids?: number[]): Promise<Machine[]> {
    const machines: Machine[] = [];
    const candidates = pids ? await inspectProcesses(pids) : await discoverMachines();
    const jailer = await Jailer.forHost();
    for (const found of candidates.filter((m) => m.owner === this.options.owner)) {
      const jail = await jailer.adopt({ key: this.jailKey(found.machineId) }, found.pid);
      const machine = new QemuMachine({
        machineId: found.machineId,
        accelerator: found.accelerator,
        process: adoptVm(found.pid),
        // A machine whose network helper is gone has no network: it is failed at once.
        ...(found.hasNetwork ? { network: found.netHelper ? adoptVm(found.netHelper.pid) : goneVm() } : {}),
        ports: (found.netHelper?.forwards ?? []).map(({ hostPort, guestPort, address }) => ({ hostPort, guestPort, url: `http://${address ?? FORWARD_ADDRESS}:${hostPort}/` })),
        consoleLog: found.consoleLog,
        controlSocket: found.controlSocket,
        qmpSocket: found.qmpSocket,
        config: () => [],
        readyTimeoutMs: 60_000,
        requestedAt: performance.now(),
        jail,
      });
      await machine.attach();
      machines.push(machine);
    }
    return machines;
  }

  /** Names a machine's uid claim: unique for its life on this host. */
  private jailKey(machineId: string): string {
    return `${this.options.owner}/${machineId}`;
  }

  private async launch(spec: MachineSpec, accelerator: Accelerator, initTimeoutMs?: number): Promise<QemuMachine> {
    const requestedAt = performance.now();
    const { image } = spec;
    const volumes = await volumeFiles(spec);
    await rm(spec.stateDir, { recursive: true, force: true });
    await ensurePrivateDir(spec.stateDir);
    if (spec.restoreFrom && volumes.length > 0) refuseVolumes(spec);
    if (this.options.unconfined && volumes.length > 0) throw userError("VOLUMES_NEED_JAIL", "an unconfined machine cannot have volumes: only the jail claims them for one machine", "run it jailed");
    const jail = this.options.unconfined ? await Jailer.unconfined(spec) : await (await Jailer.forHost()).prepare({
      key: this.jailKey(spec.id),
      name: spec.id,
      stateDir: spec.stateDir,
      memoryMiB: image.capabilities.memoryMiB,
      vcpus: image.capabilities.vcpus,
      accelerator,
      volumes,
    });
    try {
      return await this.launchIn(jail, spec, accelerator, requestedAt, initTimeoutMs);
    } catch (e) {
      await jail.release();
      throw e;
    }
  }

  private async launchIn(jail: MachineJail, spec: MachineSpec, accelerator: Accelerator, requestedAt: number, initTimeoutMs?: number): Promise<QemuMachine> {
    const { image } = spec;

    const ports: PortForward[] = [];
    for (const { port } of image.capabilities.listen) {
      const hostPort = spec.hostPorts?.[port] ?? (await freeLoopbackPort());
      ports.push({ guestPort: port, hostPort, url: `http://${this.options.forwardAddress ?? FORWARD_ADDRESS}:${hostPort}/` });
    }
    const egress: EgressRoute[] = [];
    const egressEnv: Record<string, string> = {};
    image.capabilities.egress.forEach(({ host, port }, i) => {
      const guestAddress = `10.0.2.${EGRESS_BASE + i}`;
      egress.push({ guestAddress, guestPort: port, host, port });
      egressEnv[`${host}:${port}`] = `${guestAddress}:${port}`;
    });
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
      ...(spec.volumes?.length ? { volumes: spec.volumes.map((v) => v.path) } : {}),
      // A restore's command line boots nothing (the guest keeps the rate it booted with), but it is the same.
      ...(accelerator === "tcg" ? { tscKhz: await hostTscKhz() } : {}),
      kernelArgs: [],
      consoleLog: jail.consoleLog,
      controlSocket: join(jail.runDir, "control.sock"),
      qmpSocket: join(jail.runDir, "qmp.sock"),
      pidFile: join(jail.runDir, "qemu.pid"),
      // In the run dir, which both QEMU (inside its root) and pith-net may reach.
      ...(hasNetwork ? { network: { socketPath: join(jail.runDir, "net.sock") } } : {}),
      ...(this.options.unconfined ? {} : { sandbox: true }),
      ...(this.options.tcgTranslationCacheMiB !== undefined ? { tcgTranslationCacheMiB: this.options.tcgTranslationCacheMiB } : {}),
      ...(this.options.freePageReporting ? { freePageReporting: true } : {}),
    };
    jail.report.seccomp = qemuSpec.sandbox === true;
    const launch: Launch = {
      spec,
      qemuSpec,
      jail,
      ports,
      requestedAt,
      // QEMU opens these before the guest runs; inside the jail they are all it can see of the host
      // besides /usr. It needs no network at all: its NIC is a stream to pith-net, a unix socket.
      command: (argv) =>
        jail.command(QEMU_BINARY, argv, {
          vmm: true,
          root: true,
          netns: true,
          readOnly: [spec.kernel, spec.initrd, ...(spec.disk ? [spec.disk] : [])],
          // QEMU probes file locking with /dev/null.
          devices: ["/dev/null", ...(accelerator === "kvm" ? ["/dev/kvm"] : [])],
        }),
      startNetwork: async () =>
        qemuSpec.network &&
        startNetHelper(
          {
            owner: this.options.owner,
            machineId: spec.id,
            socketPath: qemuSpec.network.socketPath,
            forwards: ports.map((p) => ({ hostPort: p.hostPort, guestPort: p.guestPort, ...(this.options.forwardAddress ? { address: this.options.forwardAddress } : {}) })),
            egress,
          },
          join(spec.stateDir, "net.log"),
          // The same uid, cgroup and limits as its QEMU, and a root of its own too, but the host's
          // network: it binds the forwards and dials egress, resolving names with the host's files.
          (binary, args) => jail.command(binary, args, { root: true, netns: false, readOnly: [binary, ...resolverFiles()] }),
        ),
      envLines: (id, own) =>
        Object.entries({
          PITH_MACHINE_ID: id,
          PITH_NAME: image.name,
          PITH_IMAGE: image.digest,
          PITH_LISTEN: image.capabilities.listen.map((l) => l.port).join(","),
          PITH_EGRESS: JSON.stringify(egressEnv),
          ...own,
        }).map(([k, v]) => `env ${k}=${v}`),
    };
    return spec.restoreFrom ? this.restore(launch, spec.restoreFrom) : this.boot(launch, initTimeoutMs);
  }

  /** The common part of a QemuMachine's options: where its sockets are, its ports, its jail. */
  private machineOptions(launch: Launch, process: VmProcess, network: VmProcess | undefined): Omit<QemuMachineOptions, "config"> {
    const { spec, qemuSpec } = launch;
    return {
      machineId: spec.id,
      accelerator: qemuSpec.accelerator,
      process,
      ...(network ? { network } : {}),
      ports: launch.ports,
      consoleLog: qemuSpec.consoleLog,
      controlSocket: qemuSpec.controlSocket,
      qmpSocket: qemuSpec.qmpSocket,
      readyTimeoutMs: spec.image.readyTimeoutMs,
      requestedAt: launch.requestedAt,
      jail: launch.jail,
    };
  }

  /** Boots the image; a snapshot source also rehearses the restore before it is saved. */
  private async boot(launch: Launch, initTimeoutMs?: number): Promise<QemuMachine> {
    const { spec } = launch;
    const offsetMs = spec.snapshotSource ? SNAPSHOT_SOURCE_CLOCK_OFFSET_MS : 0;
    const envLines = launch.envLines(spec.id, spec.env);
    const rehearsals = this.options.restoreRehearsals ?? RESTORE_REHEARSALS;
    // The same identity again, as a restore would send it: the guest library sees nothing change.
    const rehearsal = spec.snapshotSource && rehearsals > 0 ? { lines: () => restoredLines(offsetMs, envLines), times: rehearsals } : undefined;

    // The network first: QEMU connects to it as it starts. If QEMU then fails, the machine's
    // exit ends the network too.
    const network = await launch.startNetwork();
    const command = launch.command(qemuArgv(launch.qemuSpec));
    const machine = new QemuMachine({
      ...this.machineOptions(launch, spawnVm(command.binary, command.argv, join(spec.stateDir, "qemu.log")), network),
      config: (anchor?: ClockAnchor) => [...baseConfigLines(offsetMs, anchor), ...envLines, "end"],
      ...(rehearsal ? { rehearsal } : {}),
    });
    if (!(await machine.attach(initTimeoutMs))) {
      await machine.stop(0);
      const exit = await machine.whenExited();
      throw new Error(`machine ${spec.id} did not start under ${launch.qemuSpec.accelerator}: ${exit.reason}`);
    }
    return machine;
  }

  /**
   * Starts QEMU paused on the snapshot, waits until it has loaded, queues the machine's new
   * identity for init (read the moment the guest runs), then lets it run. Any failure kills
   * QEMU and rejects: the caller boots instead.
   */
  private async restore(launch: Launch, file: string): Promise<QemuMachine> {
    const { spec, qemuSpec } = launch;
    const envLines = launch.envLines(spec.id, spec.env);
    // A warm machine's clock runs behind until it is claimed, like a snapshot source's (see MachineSpec.warmPool).
    const config = (): string[] => restoredLines(spec.warmPool ? SNAPSHOT_SOURCE_CLOCK_OFFSET_MS : 0, envLines);
    const claimConfig = (identity: ClaimedIdentity): string[] => {
      checkMachineEnv(identity.id, identity.env);
      return restoredLines(0, launch.envLines(identity.id, identity.env));
    };
    let fd: number;
    try {
      fd = openSync(file, "r");
    } catch (e) {
      throw systemError("SNAPSHOT_UNREADABLE", `cannot open snapshot ${file}: ${(e as Error).message}`);
    }
    // A fresh network: the snapshot holds no connection (sources never serve), so nothing is lost.
    let network: VmProcess | undefined;
    let vm: VmProcess;
    try {
      network = await launch.startNetwork();
      const command = launch.command(qemuArgv({ ...qemuSpec, incomingFd: 3 }));
      vm = spawnVm(command.binary, command.argv, join(spec.stateDir, "qemu.log"), [fd]);
    } finally {
      closeSync(fd); // QEMU has its own copy
    }
    const machine = new QemuMachine({
      ...this.machineOptions(launch, vm, network),
      config,
      restored: true,
      ...(spec.warmPool ? { claimConfig, rehearsal: { lines: config, times: WARM_REHEARSALS } } : {}),
    });
    let qmp: QmpClient | undefined;
    try {
      const exited = vm.exited.then(() => {
        throw new Error("QEMU exited while loading it");
      });
      exited.catch(() => {}); // raced below only until the machine runs
      qmp = await Promise.race([vmmSocket(qemuSpec.qmpSocket).then((path) => QmpClient.connect(path, RESTORE_TIMEOUT_MS, QMP_RETRY_WHILE_RESTORING_MS)), exited]);
      const deadline = performance.now() + RESTORE_TIMEOUT_MS;
      for (;;) {
        const state = await Promise.race([qmp.execute<{ status?: string; "error-desc"?: string }>("query-migrate"), exited]);
        if (state.status === "completed") break;
        if (state.status === "failed") throw new Error(state["error-desc"] ?? "loading failed");
        if (performance.now() > deadline) throw new Error(`not loaded within ${RESTORE_TIMEOUT_MS / 1000}s`);
        await sleep(2);
      }
      if (!(await machine.attach())) throw new Error("its control channel did not open");
      await machine.resume(qmp, launch.requestedAt);
    } catch (e) {
      vm.kill("SIGKILL");
      await machine.whenExited(); // and its network with it
      const log = (await logTailText(join(spec.stateDir, "qemu.log")).catch(() => "")).trim().split("\n").slice(-2).join(" ");
      throw systemError("SNAPSHOT_RESTORE_FAILED", `cannot restore machine ${spec.id} from ${file}: ${(e as Error).message}${log ? ` (QEMU: ${log})` : ""}`);
    } finally {
      qmp?.close();
    }
    return machine;
  }
}

/** What one start of a machine needs, made once: a boot and a restore both use it. */
interface Launch {
  spec: MachineSpec;
  qemuSpec: QemuMachineSpec;
  jail: MachineJail;
  ports: PortForward[];
  /** performance.now() when the machine was asked for. */
  requestedAt: number;
  /** QEMU's command line, inside the machine's jail. */
  command: (argv: string[]) => { binary: string; argv: string[] };
  /** pith-net, for a machine with a network; resolves once it listens. */
  startNetwork: () => Promise<VmProcess | undefined>;
  /** The `env` lines init gets for an identity: Pith's own variables, then the machine's. */
  envLines: (id: string, own: Record<string, string> | undefined) => string[];
}

/** A restore's handshake: clock (maybe set off), entropy, an identity, then "restored". */
function restoredLines(clockOffsetMs: number, envLines: string[]): string[] {
  return [...baseConfigLines(clockOffsetMs), ...envLines, "restored"];
}

async function detectQemuVersion(): Promise<string> {
  const { stdout } = await execFile(QEMU_BINARY, ["--version"], { code: "QEMU_MISSING" });
  return stdout.split("\n")[0] ?? "unknown";
}

/** What getaddrinfo reads on this host, for pith-net's private root: the hosts file, DNS, NSS. */
function resolverFiles(): string[] {
  return ["/etc/hosts", "/etc/resolv.conf", "/etc/nsswitch.conf", "/etc/gai.conf", "/etc/host.conf"].filter((f) => existsSync(f));
}

/**
 * The volume files for a machine: exactly one for each volume its image declares, paired by
 * name in the image's order (the guest mounts them by position), each an existing regular file.
 */
async function volumeFiles(spec: MachineSpec): Promise<{ path: string; bytes: number }[]> {
  const declared = spec.image.capabilities.volumes ?? [];
  const given = spec.volumes ?? [];
  const names = (list: readonly { name: string }[]): string => list.map((v) => v.name).join(", ") || "none";
  if (declared.length !== given.length || declared.some((v, i) => v.name !== given[i]!.name)) {
    throw userError("VOLUMES_MISMATCH", `image ${spec.image.name} declares volumes [${names(declared)}], the machine was given [${names(given)}]`,
      "give one volume file per declared volume, in the image's order");
  }
  const files: { path: string; bytes: number }[] = [];
  for (const volume of given) {
    const info = await lstat(volume.path).catch(() => undefined);
    if (!info?.isFile()) throw userError("VOLUME_FILE_INVALID", `volume ${volume.name}: ${volume.path} is not a regular file`, "Pith makes volume files itself (src/volume/volume-file.ts)");
    files.push({ path: volume.path, bytes: info.size });
  }
  return files;
}
