import type { Command } from "commander";
import { randomBytes } from "node:crypto";
import { join } from "node:path";
import { QemuHypervisor } from "../../hypervisor/qemu/qemu-hypervisor.ts";
import type { BootTimings, Machine } from "../../hypervisor/hypervisor.ts";
import { bootFiles } from "../../image/image-store.ts";
import { envNameProblem, envProblems, envValueProblem } from "../../model/env-rules.ts";
import { userError } from "../../shared/errors.ts";
import { followFile } from "../../shared/follow-file.ts";
import { machinesDir } from "../../shared/paths.ts";
import { MachineStarter, refuseVolumes } from "../../snapshot/machine-starter.ts";
import { ensureVolumeFile, runVolumePath } from "../../volume/volume-file.ts";
import { readEnvFile } from "../env-file.ts";
import { imageFromArgument } from "../image-argument.ts";

interface RunOptions {
  env: string[];
  envFile: string[];
  port: string[];
  grace: string;
  console: boolean;
  snapshot: boolean;
}

export function registerRun(program: Command): void {
  program
    .command("run")
    .description("boot an app or image as a machine, stream its console, stop it on Ctrl-C")
    .argument("<app-or-image>", "an app directory (built first, cached) or an image name/digest")
    .option("-e, --env <KEY=VALUE>", "set an environment variable in the machine (repeatable; visible in ps: use --env-file for secrets)", collect, [])
    .option("--env-file <file>", "KEY=VALUE lines to set in the machine's env, e.g. an API token (repeatable; -e wins)", collect, [])
    .option("-p, --port <GUEST:HOST>", "forward a listen port to a chosen host port on 127.0.0.1 (repeatable)", collect, [])
    .option("--grace <ms>", "how long the app gets to stop after SIGTERM", "5000")
    .option("--no-console", "do not stream the machine's console")
    .option("--snapshot", "restore the machine from a snapshot of a ready one (made first, once, if there is none)", false)
    .action(async (arg: string, options: RunOptions) => {
      const image = await imageFromArgument(arg);
      const env: Record<string, string> = {};
      for (const file of options.envFile) Object.assign(env, readEnvFile(file));
      Object.assign(env, parseEnv(options.env));
      const hostPorts = parsePorts(options.port, image.record.capabilities.listen.map((l) => l.port));
      const grace = Number(options.grace);
      if (!Number.isInteger(grace) || grace < 0) throw userError("BAD_FLAG", `--grace must be a whole number of milliseconds, got ${options.grace}`);

      const id = `${image.record.name}-${randomBytes(3).toString("hex")}`;
      const hypervisor = new QemuHypervisor();
      const starter = new MachineStarter({ hypervisor });
      if (options.snapshot) refuseVolumes({ image: image.record });
      const volumes = [];
      for (const v of image.record.capabilities.volumes ?? []) {
        const path = runVolumePath(image.record.name, v.name);
        if (await ensureVolumeFile(path, v.sizeMiB)) process.stderr.write(`volume ${v.name}: made ${path} (${v.sizeMiB} MiB)\n`);
        volumes.push({ name: v.name, path });
      }
      const spec = { id, image: image.record, ...(await bootFiles(image)), stateDir: join(machinesDir(), id), env, hostPorts, ...(volumes.length ? { volumes } : {}) };
      // Interrupted while starting (a snapshot source may be running too): stop what this process
      // started, found by name, since QEMU runs in its own process group and would outlive us.
      const abandon = new AbortController();
      const stopOwnMachines = async (): Promise<void> => {
        const found = await hypervisor.recover();
        await Promise.all(found.filter((m) => m.id === id || m.id.endsWith(`-${process.pid}`)).map((m) => m.stop(0)));
      };
      const interruptedStart = (signal: NodeJS.Signals): void => {
        process.stderr.write(`\n${signal}: abandoning the start of ${id}\n`);
        abandon.abort();
        void stopOwnMachines(); // a source booting now ends at once, not after its boot
      };
      process.once("SIGINT", interruptedStart);
      process.once("SIGTERM", interruptedStart);
      const machine = await starter
        .start(spec, options.snapshot ? "snapshot" : "boot", (n) => process.stderr.write(`${n.message}\n`), abandon.signal)
        .catch((e: unknown) => {
          if (abandon.signal.aborted) return undefined;
          throw e;
        });
      if (!machine || abandon.signal.aborted) {
        // The start has settled, so nothing more will be started: what runs now is all there is to stop.
        await stopOwnMachines();
        process.exit(130);
      }
      process.off("SIGINT", interruptedStart);
      process.off("SIGTERM", interruptedStart);
      process.stderr.write(`machine ${id} started (pid ${machine.pid}, ${machine.accelerator}${machine.startedFrom === "snapshot" ? ", from a snapshot" : ""})\n`);
      const console = options.console ? followFile(machine.consoleLog, (chunk) => process.stdout.write(chunk)) : undefined;

      let stopping: Promise<unknown> | undefined;
      const stop = (signal: string) => {
        if (stopping) return;
        process.stderr.write(`\n${signal}: stopping ${id}\n`);
        stopping = machine.stop(grace);
      };
      process.on("SIGINT", () => stop("SIGINT"));
      process.on("SIGTERM", () => stop("SIGTERM"));

      machine.whenReady().then(
        (timings) => process.stderr.write(readyMessage(machine, timings)),
        (e: Error) => {
          // An app that ends before it is ready (a batch job) has its exit reported below.
          if (stopping || machine.exit) return;
          process.stderr.write(`machine ${id} failed: ${e.message}\n`);
          stopping = machine.stop(0);
        },
      );
      const exit = await machine.whenExited();
      await console?.stop();
      process.stderr.write(`machine ${id} stopped: ${exit.reason}\n`);
      process.exitCode = exit.code ?? 1;
    });
}

function readyMessage(machine: Machine, t: BootTimings): string {
  const urls = machine.ports.map((p) => `  ${p.guestPort} -> ${p.url}\n`).join("");
  if (machine.startedFrom === "snapshot") return `machine ${machine.id} ready in ${t.readyMs} ms (restore ${t.restoreMs} ms)\n` + (urls ? `listening:\n${urls}` : "");
  return (
    `machine ${machine.id} ready in ${t.readyMs} ms (vmm ${t.vmmMs} ms, kernel ${t.kernelMs} ms, init ${t.initMs} ms, app ${t.appMs} ms)\n` +
    (urls ? `listening:\n${urls}` : "")
  );
}

const collect = (value: string, previous: string[]): string[] => [...previous, value];

/** `-e K=V` flags, held to the rules every env that reaches a machine follows. */
export function parseEnv(items: string[]): Record<string, string> {
  const env: Record<string, string> = {};
  for (const item of items) {
    const eq = item.indexOf("=");
    if (eq <= 0) throw userError("BAD_FLAG", `--env ${JSON.stringify(item)}: expected KEY=VALUE`, "e.g. --env GREETING=hi");
    const key = item.slice(0, eq);
    const problem = envNameProblem(key) ?? envValueProblem(key, item.slice(eq + 1));
    if (problem) throw userError("BAD_FLAG", `--env ${JSON.stringify(key)}: ${problem.message}`, problem.hint);
    env[key] = item.slice(eq + 1);
  }
  const whole = envProblems(env)[0];
  if (whole) throw userError("BAD_FLAG", `--env: ${whole.message}`, whole.hint);
  return env;
}

function parsePorts(items: string[], declared: number[]): Record<number, number> {
  const ports: Record<number, number> = {};
  for (const item of items) {
    const match = /^(\d+):(\d+)$/.exec(item);
    const guest = Number(match?.[1]);
    const host = Number(match?.[2]);
    if (!match || host < 1 || host > 65535) throw userError("BAD_FLAG", `--port ${item}: expected GUEST:HOST, e.g. 8080:18080`);
    if (!declared.includes(guest)) throw userError("BAD_FLAG", `--port ${item}: the image does not listen on ${guest}`, `declared listen ports: ${declared.join(", ") || "none"}`);
    ports[guest] = host;
  }
  return ports;
}
