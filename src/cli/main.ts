import { Command, CommanderError } from "commander";
import { registerApply } from "./commands/apply.ts";
import { registerBuild } from "./commands/build.ts";
import { registerDelete } from "./commands/delete.ts";
import { registerDescribe } from "./commands/describe.ts";
import { registerGet } from "./commands/get.ts";
import { registerImages } from "./commands/images.ts";
import { registerInspect } from "./commands/inspect.ts";
import { registerKernel } from "./commands/kernel.ts";
import { registerLogs } from "./commands/logs.ts";
import { registerPortForward } from "./commands/port-forward.ts";
import { registerPull } from "./commands/pull.ts";
import { registerPush } from "./commands/push.ts";
import { registerRollout } from "./commands/rollout.ts";
import { registerNodeCommands } from "./commands/node.ts";
import { registerRun } from "./commands/run.ts";
import { registerScale } from "./commands/scale.ts";
import { registerSnapshots } from "./commands/snapshots.ts";
import { registerToken } from "./commands/token.ts";
import { registerUp } from "./commands/up.ts";
import { registerClientOptions } from "./client-config.ts";
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
registerSnapshots(program);
registerPush(program);
registerPull(program);
registerClientOptions(program);
registerApply(program);
registerGet(program);
registerDescribe(program);
registerLogs(program);
registerPortForward(program);
registerScale(program);
registerRollout(program);
registerDelete(program);
registerToken(program);
registerNodeCommands(program);
registerUp(program);

try {
  await program.parseAsync(process.argv);
} catch (e) {
  if (e instanceof CommanderError) process.exitCode = e.exitCode;
  else {
    printError(e);
    process.exitCode = 1;
  }
}
