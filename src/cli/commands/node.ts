import type { Command } from "commander";
import { isApiError } from "../../client/api-error.ts";
import type { PithClient } from "../../client/index.ts";
import type { Machine, NodeSpec, PithNode } from "../../model/kinds.ts";
import { userError } from "../../shared/errors.ts";
import { clientFor } from "../client-config.ts";
import { lastLookNote, pollUntil } from "../poll-until.ts";
import { formatTimeout, parseTimeoutFlag } from "../timeout-flag.ts";
import { notFound } from "./get.ts";

/** A machine moves by booting its replacement: once a second is often enough to look. */
const DRAIN_POLL_MS = 1000;

/** Changes a node's cordon and drain, retrying when its agent's heartbeat wrote in between. */
async function setNodeSpec(client: PithClient, name: string, change: Pick<NodeSpec, "unschedulable" | "drain">): Promise<PithNode> {
  for (let attempt = 0; ; attempt++) {
    const node = await client.get("Node", name);
    if (!node) throw notFound("Node", name);
    const { unschedulable: _u, drain: _d, ...rest } = node.spec;
    const spec: NodeSpec = { ...rest, ...(change.unschedulable ? { unschedulable: true } : {}), ...(change.drain ? { drain: true } : {}) };
    try {
      return await client.update({ apiVersion: node.apiVersion, kind: "Node", metadata: { name, labels: node.metadata.labels, resourceVersion: node.metadata.resourceVersion }, spec });
    } catch (e) {
      if (!isApiError(e, 409) || attempt >= 10) throw e;
    }
  }
}

/** The machines still meant to run on a node: those of services (which move) and the others (which cannot). */
async function machinesOn(client: PithClient, node: string, signal: AbortSignal): Promise<{ moving: Machine[]; unmanaged: Machine[] }> {
  const running = (await client.list("Machine", { signal })).items.filter((m) => m.spec.node === node && m.spec.desiredState === "running");
  return { moving: running.filter((m) => m.spec.service), unmanaged: running.filter((m) => !m.spec.service) };
}

export function registerNodeCommands(program: Command): void {
  program
    .command("cordon")
    .description("stop placing new machines on a node; its machines keep running")
    .argument("<node>", "the node's name")
    .action(async (name: string, _options: unknown, command: Command) => {
      const node = await clientFor(command).get("Node", name);
      if (!node) throw notFound("Node", name);
      await setNodeSpec(clientFor(command), name, { unschedulable: true, drain: node.spec.drain ?? false });
      process.stdout.write(`node/${name} cordoned\n`);
    });

  program
    .command("uncordon")
    .description("let the scheduler use a node again (and end a drain)")
    .argument("<node>", "the node's name")
    .action(async (name: string, _options: unknown, command: Command) => {
      await setNodeSpec(clientFor(command), name, { unschedulable: false, drain: false });
      process.stdout.write(`node/${name} uncordoned\n`);
    });

  program
    .command("drain")
    .description("cordon a node and move its machines elsewhere: each is stopped only once its replacement is ready")
    .argument("<node>", "the node's name")
    .option("--timeout <duration>", "how long to wait for the node's machines to move (e.g. 90s, 5m)", "5m")
    .option("--no-wait", "return once the drain is asked for")
    .action(async (name: string, options: { timeout: string; wait: boolean }, command: Command) => {
      const timeoutMs = parseTimeoutFlag(options.timeout);
      const client = clientFor(command);
      await setNodeSpec(client, name, { unschedulable: true, drain: true });
      process.stdout.write(`node/${name} cordoned and draining\n`);
      if (!options.wait) return;
      const result = await pollUntil((signal) => machinesOn(client, name, signal), ({ moving }) => moving.length === 0, {
        timeoutMs,
        everyMs: DRAIN_POLL_MS,
        progress: { line: ({ moving }) => `${moving.length} machine(s) of services still on ${name}`, write: (line) => process.stdout.write(`${line}\n`) },
      });
      if (!result.done) {
        throw userError(
          "DRAIN_TIMEOUT",
          `node ${name} still runs ${result.state.moving.map((m) => m.metadata.name).join(", ")} after ${formatTimeout(timeoutMs)}${lastLookNote(result)}`,
          "their replacements are not ready yet: see `pith get machines` and `pith describe machine NAME` (no other node with room?); the drain goes on in the background",
        );
      }
      for (const m of result.state.unmanaged) process.stdout.write(`machine/${m.metadata.name} belongs to no service: nothing replaces it, so it keeps running on ${name} (delete it to stop it)\n`);
      process.stdout.write(`node/${name} drained\n`);
    });
}
