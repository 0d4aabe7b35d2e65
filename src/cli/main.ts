import { Command, CommanderError } from "commander";
import { registerBuild } from "./commands/build.ts";
import { registerImages } from "./commands/images.ts";
import { registerInspect } from "./commands/inspect.ts";
import { registerKernel } from "./commands/kernel.ts";
import { registerRun } from "./commands/run.ts";
import { printError } from "./output.ts";

const program = new Command("pith")
  .description("Just enough OS: build apps into tiny VM images and run them as machines")
  .version("0.1.0")
  .showHelpAfterError("(run with --help for usage)")
  .exitOverride();

registerBuild(program);
registerRun(program);
registerInspect(program);
registerImages(program);
registerKernel(program);

try {
  await program.parseAsync(process.argv);
} catch (e) {
  if (e instanceof CommanderError) process.exitCode = e.exitCode;
  else {
    printError(e);
    process.exitCode = 1;
  }
}
