import type { Command } from "commander";
import { isApiError } from "../../client/api-error.ts";
import { DEFAULT_REQUEST_TIMEOUT_MS, type PithClient } from "../../client/pith-client.ts";
import type { Service } from "../../model/kinds.ts";
import { changeFrom } from "../../model/revision-history.ts";
import { rolloutProgress } from "../../model/rollout-progress.ts";
import { SERVICE_LABEL } from "../../model/labels.ts";
import { userError } from "../../shared/errors.ts";
import { clientFor } from "../client-config.ts";
import { lastLookNote, pollUntil } from "../poll-until.ts";
import { formatTimeout, parseTimeoutFlag } from "../timeout-flag.ts";
import { objectRef } from "../kinds.ts";
import { table } from "../output.ts";
import { formatAge, notFound } from "./get.ts";

/** A rollout replaces machines one by one, each taking a boot: half a second between looks is plenty. */
const STATUS_POLL_MS = 500;

/** `pith rollout status|restart|undo|history SERVICE`, after kubectl's. */
export function registerRollout(program: Command): void {
  const rollout = program.command("rollout").description("follow, restart or undo a service's rollout, and list its revisions");

  rollout
    .command("status")
    .description("wait until the service runs only machines of its current template, all ready (exit 1 if it does not in time)")
    .argument("<service>")
    .option("--timeout <duration>", "how long to wait (e.g. 90s, 5m; a bare number is seconds)", "300")
    .option("--no-watch", "print where the rollout stands once, without waiting")
    .action(async (name: string, options: { timeout: string; watch: boolean }, command: Command) => {
      const client = clientFor(command);
      const timeoutMs = parseTimeoutFlag(options.timeout);
      const result = await pollUntil((signal) => progressOf(client, name, signal), (progress) => progress.done, {
        timeoutMs: options.watch ? timeoutMs : 0,
        // One look and no --timeout to keep: it gets as long as any other request.
        ...(options.watch ? {} : { lookFloorMs: DEFAULT_REQUEST_TIMEOUT_MS }),
        everyMs: STATUS_POLL_MS,
        progress: { line: (progress) => progress.message, write: (line) => process.stdout.write(`${line}\n`) },
      });
      if (result.done) return;
      if (!options.watch) {
        process.exitCode = 1;
        return;
      }
      throw userError("ROLLOUT_TIMEOUT", `the rollout of ${name} did not finish within ${formatTimeout(timeoutMs)}: ${result.state.message}${lastLookNote(result)}`, `pith describe service ${name} shows its machines and events; pith rollout undo ${name} returns to the previous revision`);
    });

  rollout
    .command("restart")
    .description("replace every machine of the service (same settings, new machines), under its update strategy")
    .argument("<service>")
    .action(async (name: string, _options: unknown, command: Command) => {
      await act(clientFor(command), name, "restart");
      process.stdout.write(`${objectRef("Service", name)} restarted\n`);
    });

  rollout
    .command("undo")
    .description("return the service to its previous template (or --to-revision N): image digest, env, start mode")
    .argument("<service>")
    .option("--to-revision <n>", "a revision from `pith rollout history`")
    .action(async (name: string, options: { toRevision?: string }, command: Command) => {
      const toRevision = options.toRevision === undefined ? undefined : parseRevision(options.toRevision);
      const service = await act(clientFor(command), name, "undo", toRevision);
      const target = toRevision ?? service.status.revisions?.[1]?.revision;
      process.stdout.write(`${objectRef("Service", name)} rolled back${target ? ` to the template of revision ${target}` : ""}\n`);
    });

  rollout
    .command("history")
    .description("the templates the service rolled out, newest first (kept: the last 10)")
    .argument("<service>")
    .action(async (name: string, _options: unknown, command: Command) => {
      const service = await clientFor(command).get("Service", name);
      if (!service) throw notFound("Service", name);
      process.stdout.write(historyTable(service));
    });
}

async function progressOf(client: PithClient, name: string, signal: AbortSignal) {
  const service = await client.get("Service", name, { signal });
  if (!service) throw notFound("Service", name);
  const machines = await client.list("Machine", { labels: { [SERVICE_LABEL]: name }, signal });
  return rolloutProgress(service, machines.items);
}

async function act(client: PithClient, name: string, action: "restart" | "undo", toRevision?: number): Promise<Service> {
  try {
    return await client.rollout(name, action, toRevision === undefined ? {} : { toRevision });
  } catch (e) {
    if (isApiError(e, 404)) throw notFound("Service", name);
    throw e;
  }
}

/** REVISION, TEMPLATE, IMAGE, CHANGE (from the revision before it), AGE; the current one marked. */
export function historyTable(service: Service, now = Date.now()): string {
  const revisions = service.status.revisions ?? [];
  const rows = revisions.map((r, i) => [
    `${r.revision}${r.revision === service.status.revision ? " (current)" : ""}`,
    r.templateHash,
    r.image.replace(/^sha256:/, "").slice(0, 12),
    changeFrom(revisions[i + 1], r),
    formatAge(r.createdAt, now),
  ]);
  return table(["REVISION", "TEMPLATE", "IMAGE", "CHANGE", "AGE"], rows);
}

function parseRevision(text: string): number {
  const n = /^\d+$/.test(text) ? Number(text) : NaN;
  if (!Number.isSafeInteger(n) || n < 1) throw userError("BAD_FLAG", `--to-revision ${text}: not a revision number`, "pith rollout history SERVICE lists them");
  return n;
}
