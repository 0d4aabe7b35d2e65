import type { Command } from "commander";
import { isApiError } from "../../client/api-error.ts";
import { clientFor } from "../client-config.ts";
import { notFound } from "./get.ts";

export function registerLogs(program: Command): void {
  program
    .command("logs")
    .description("print a machine's console output")
    .argument("<machine>", "the machine's name (see pith get machines)")
    .option("-f, --follow", "keep printing new output until Ctrl-C")
    .action(async (name: string, options: { follow?: boolean }, command: Command) => {
      const client = clientFor(command);
      const controller = new AbortController();
      if (options.follow) process.once("SIGINT", () => controller.abort());
      try {
        for await (const chunk of client.console(name, { follow: options.follow ?? false, signal: controller.signal })) {
          process.stdout.write(chunk);
        }
      } catch (e) {
        // 404 also means "no console log yet" for a machine that exists: keep the server's words then.
        if (isApiError(e, 404) && !(await client.get("Machine", name))) throw notFound("Machine", name);
        throw e;
      }
    });
}
