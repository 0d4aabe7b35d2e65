import type { Command } from "commander";
import { isApiError } from "../../client/api-error.ts";
import type { PithClient } from "../../client/pith-client.ts";
import type { Kind } from "../../model/resource.ts";
import { isPithError, userError } from "../../shared/errors.ts";
import { clientFor } from "../client-config.ts";
import { objectRef, parseKindAndName } from "../kinds.ts";
import { printError } from "../output.ts";
import { printDocumentError, readDocuments } from "./apply.ts";
import { notFound } from "./get.ts";

export function registerDelete(program: Command): void {
  program
    .command("delete")
    .description("delete an object, or every object in a file")
    .argument("[kind]", "service (svc), machine (m), node (no), image (img), event (ev); or KIND/NAME")
    .argument("[name]", "the object's name")
    .option("-f, --filename <file>", "delete the objects a file declares (- for stdin)")
    .action(async (kindArg: string | undefined, nameArg: string | undefined, options: { filename?: string }, command: Command) => {
      if (options.filename !== undefined) {
        if (kindArg !== undefined) throw userError("BAD_ARGUMENTS", "give either -f FILE or KIND NAME, not both", "e.g. pith delete -f web.yaml");
        const documents = await readDocuments(options.filename, { checkApps: false });
        const client = clientFor(command);
        let failed = 0;
        for (const { input } of documents) {
          const ref = objectRef(input.kind, input.metadata.name);
          try {
            process.stdout.write(await deleteOne(client, input.kind, input.metadata.name));
          } catch (e) {
            if (isApiError(e) && (e.status === 0 || e.status === 401)) throw e;
            failed++;
            // "service web not found" already names the object; other errors get the reference.
            if (isPithError(e) && e.code === "NOT_FOUND") printError(e);
            else printDocumentError(ref, e);
          }
        }
        if (failed) process.exitCode = 1;
        return;
      }
      if (kindArg === undefined) throw userError("BAD_ARGUMENTS", "say what to delete: KIND NAME or -f FILE", "e.g. pith delete service web");
      const { kind, name } = parseKindAndName(kindArg, nameArg);
      if (name === undefined) throw userError("BAD_ARGUMENTS", `which ${kindArg}? give its name`, `e.g. pith delete ${kindArg} web`);
      process.stdout.write(await deleteOne(clientFor(command), kind, name));
    });
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
