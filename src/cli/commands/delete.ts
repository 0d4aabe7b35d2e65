import type { Command } from "commander";
import { isApiError } from "../../client/api-error.ts";
import type { PithClient } from "../../client/pith-client.ts";
import type { Kind } from "../../model/resource.ts";
import { SERVICE_LABEL } from "../../model/labels.ts";
import { isPithError, userError } from "../../shared/errors.ts";
import { clientFor } from "../client-config.ts";
import { objectRef, parseKindAndName } from "../kinds.ts";
import { printError } from "../output.ts";
import { printDocumentError, readDocuments } from "./apply.ts";
import { notFound } from "./get.ts";
import { lastLookNote, pollUntil } from "../poll-until.ts";
import { formatTimeout, parseTimeoutFlag } from "../timeout-flag.ts";

/** How often --wait looks again: a machine stops within a second or two of its drain. */
const WAIT_POLL_MS = 250;

export function registerDelete(program: Command): void {
  program
    .command("delete")
    .description("delete an object, or every object in a file")
    .argument("[kind]", "service (svc), machine (m), node (no), image (img), event (ev); or KIND/NAME")
    .argument("[name]", "the object's name")
    .option("-f, --filename <file>", "delete the objects a file declares (- for stdin)")
    .option("--wait", "for services: return once their machines have stopped (exit 1 if they do not within --timeout)")
    .option("--timeout <duration>", "how long --wait waits (e.g. 90s, 5m)", "2m")
    .action(async (kindArg: string | undefined, nameArg: string | undefined, options: { filename?: string; wait?: boolean; timeout: string }, command: Command) => {
      const timeoutMs = parseTimeoutFlag(options.timeout);
      if (options.filename !== undefined) {
        if (kindArg !== undefined) throw userError("BAD_ARGUMENTS", "give either -f FILE or KIND NAME, not both", "e.g. pith delete -f web.yaml");
        const documents = await readDocuments(options.filename, { checkApps: false });
        const client = clientFor(command);
        const deletedServices: string[] = [];
        let failed = 0;
        for (const { input } of documents) {
          const ref = objectRef(input.kind, input.metadata.name);
          try {
            process.stdout.write(await deleteOne(client, input.kind, input.metadata.name));
            if (input.kind === "Service") deletedServices.push(input.metadata.name);
          } catch (e) {
            if (isApiError(e) && (e.status === 0 || e.status === 401)) throw e;
            failed++;
            // "service web not found" already names the object; other errors get the reference.
            if (isPithError(e) && e.code === "NOT_FOUND") printError(e);
            else printDocumentError(ref, e);
          }
        }
        // Every object is deleted first, so the services' machines all stop together, under one --timeout.
        if (options.wait && deletedServices.length) await untilMachinesStopped(client, deletedServices, timeoutMs);
        if (failed) process.exitCode = 1;
        return;
      }
      if (kindArg === undefined) throw userError("BAD_ARGUMENTS", "say what to delete: KIND NAME or -f FILE", "e.g. pith delete service web");
      const { kind, name } = parseKindAndName(kindArg, nameArg);
      if (name === undefined) throw userError("BAD_ARGUMENTS", `which ${kindArg}? give its name`, `e.g. pith delete ${kindArg} web`);
      if (options.wait && kind !== "Service") throw userError("BAD_FLAG", `--wait waits for a service's machines to stop, not for a ${kind.toLowerCase()}`, `e.g. pith delete service web --wait`);
      const client = clientFor(command);
      process.stdout.write(await deleteOne(client, kind, name));
      if (options.wait) await untilMachinesStopped(client, [name], timeoutMs);
    });
}

/**
 * Deleted services' machines are stopped by their agents (drained first), and each agent
 * deletes a machine's object only once its VM has exited: no object left means none runs.
 * Progress goes to stderr, so stdout stays one line per deleted object.
 */
async function untilMachinesStopped(client: PithClient, services: string[], timeoutMs: number): Promise<void> {
  const who = services.length === 1 ? `service ${services[0]}` : `services ${services.join(", ")}`;
  const result = await pollUntil(
    // One list per service, each filtered by the API on the service's label.
    async (signal) =>
      (await Promise.all(services.map((service) => client.list("Machine", { labels: { [SERVICE_LABEL]: service }, signal }))))
        .flatMap((list) => list.items.map((m) => m.metadata.name))
        .sort(),
    (left) => left.length === 0,
    {
      timeoutMs,
      everyMs: WAIT_POLL_MS,
      progress: {
        line: (left) => (left.length ? `${who}: waiting for ${left.length === 1 ? "1 machine" : `${left.length} machines`} to stop: ${left.join(", ")}` : undefined),
        write: (line) => process.stderr.write(`${line}\n`),
      },
    },
  );
  if (result.done) {
    if (result.said) process.stderr.write(`${who}: ${services.length === 1 ? "its" : "their"} machines have stopped\n`);
    return;
  }
  throw userError(
    "WAIT_TIMEOUT",
    `${who}: ${result.state.join(", ")} still there after ${formatTimeout(timeoutMs)}${lastLookNote(result)}`,
    "their nodes' agents stop them: are they running? (pith get nodes; pith describe machine NAME)",
  );
}

async function deleteOne(client: PithClient, kind: Kind, name: string): Promise<string> {
  try {
    await client.delete(kind, name);
  } catch (e) {
    if (isApiError(e, 404)) throw notFound(kind, name);
    throw e;
  }
  return `${objectRef(kind, name)} deleted\n`;
}
