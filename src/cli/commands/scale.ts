import type { Command } from "commander";
import { isApiError } from "../../client/api-error.ts";
import { userError } from "../../shared/errors.ts";
import { clientFor } from "../client-config.ts";
import { objectRef } from "../kinds.ts";
import { notFound } from "./get.ts";

export function registerScale(program: Command): void {
  program
    .command("scale")
    .description("set how many machines a service runs")
    .argument("<service>", "the service's name")
    .argument("<replicas>", "the machine count: a whole number, 0 or more")
    .action(async (name: string, replicasArg: string, _options: unknown, command: Command) => {
      const replicas = parseReplicas(replicasArg);
      try {
        await clientFor(command).scale(name, replicas);
      } catch (e) {
        if (isApiError(e, 404)) throw notFound("Service", name);
        throw e;
      }
      process.stdout.write(`${objectRef("Service", name)} scaled to ${replicas}\n`);
    });
}

export function parseReplicas(text: string): number {
  const replicas = /^\d+$/.test(text.trim()) ? Number(text.trim()) : NaN;
  if (!Number.isSafeInteger(replicas)) {
    throw userError("BAD_REPLICAS", `replicas must be a whole number, 0 or more; got "${text}"`, "e.g. pith scale web 3 (0 stops every machine)");
  }
  return replicas;
}
