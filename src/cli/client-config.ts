import { readFileSync } from "node:fs";
import { homedir } from "node:os";
import { join } from "node:path";
import { type Command, Option } from "commander";
import { PithClient } from "../client/pith-client.ts";
import { type PithError, userError } from "../shared/errors.ts";

export const DEFAULT_SERVER = "http://127.0.0.1:7070";

/** Where each setting came from, for error messages ("the token from PITH_TOKEN was refused"). */
export type ConfigSource = "flag" | "env" | "config" | "default" | "token-file";

export interface ClientConfig {
  server: string;
  token: string;
  from: { server: ConfigSource; token: ConfigSource };
}

export interface ConfigInputs {
  flags: { server?: string | undefined; tokenFile?: string | undefined; token?: string | undefined };
  env?: NodeJS.ProcessEnv;
}

/** How to give a token without putting it in argv, where `ps` shows it to every user of the host. */
const TOKEN_WAYS = "--token-file FILE, the PITH_TOKEN environment variable, or \"token\" in $PITH_HOME/config.json";

/**
 * The global --server / --token-file options every command talking to the control plane uses.
 * `--token` is still recognised, only to refuse it with the ways that keep the token out of argv.
 */
export function registerClientOptions(program: Command): void {
  program
    .option("--server <url>", `the Pith control plane (env PITH_SERVER; default ${DEFAULT_SERVER})`)
    .option("--token-file <file>", "a file holding the API token (or env PITH_TOKEN; default: $PITH_HOME/token)")
    .addOption(new Option("--token <token>").hideHelp());
  program.hook("preAction", (_program, action) => {
    if (action.optsWithGlobals<{ token?: string }>().token !== undefined) throw tokenInArgv();
  });
}

const tokenInArgv = (): PithError =>
  userError("TOKEN_IN_ARGV", "--token is not accepted: a token on the command line is visible to every user of this host (ps, /proc)", `pass it with ${TOKEN_WAYS}`);

/**
 * Where to find the control plane and how to authenticate, first found wins:
 * --server/--token-file flags, then PITH_SERVER/PITH_TOKEN, then $PITH_HOME/config.json
 * `{ "server", "token" }`, then the defaults: http://127.0.0.1:7070 and the admin token the
 * control plane wrote to $PITH_HOME/token at its first start. ($PITH_HOME defaults to ~/.pith.)
 */
export function resolveClientConfig({ flags, env = process.env }: ConfigInputs): ClientConfig {
  if (flags.token !== undefined) throw tokenInArgv();
  const home = env.PITH_HOME || join(homedir(), ".pith");
  const file = readConfigFile(join(home, "config.json"));
  const pick = (flag: string | undefined, envValue: string | undefined, fileValue: string | undefined): [string, ConfigSource] | undefined =>
    nonEmpty(flag) ? [flag!, "flag"] : nonEmpty(envValue) ? [envValue!, "env"] : nonEmpty(fileValue) ? [fileValue!, "config"] : undefined;

  const [server, serverFrom] = pick(flags.server, env.PITH_SERVER, file.server) ?? [DEFAULT_SERVER, "default"];
  const fromFlag = nonEmpty(flags.tokenFile) ? readTokenFile(flags.tokenFile!, true) : undefined;
  let token: [string, ConfigSource] | undefined = fromFlag === undefined ? pick(undefined, env.PITH_TOKEN, file.token) : [fromFlag, "flag"];
  if (!token) {
    const tokenFile = join(home, "token");
    const fromFile = readTokenFile(tokenFile, false);
    if (!fromFile) {
      throw userError(
        "NO_TOKEN",
        `no API token for the Pith control plane at ${server}: none given, and ${tokenFile} does not exist`,
        `pass it with ${TOKEN_WAYS} (the control plane writes its admin token to $PITH_HOME/token on its host), or start a local one with \`pith up\``,
      );
    }
    token = [fromFile, "token-file"];
  }
  return { server, token: token[0], from: { server: serverFrom, token: token[1] } };
}

/** A client for the command's resolved server and token (global options read via optsWithGlobals). */
export function clientFor(command: Command, env: NodeJS.ProcessEnv = process.env): PithClient {
  const config = resolveClientConfig({ flags: globalClientFlags(command), env });
  return new PithClient({ server: config.server, token: config.token });
}

/** The global client flags as given to this command. */
export function globalClientFlags(command: Command): ConfigInputs["flags"] {
  const flags = command.optsWithGlobals<{ server?: string; tokenFile?: string; token?: string }>();
  return { server: flags.server, tokenFile: flags.tokenFile, token: flags.token };
}

const nonEmpty = (value: string | undefined): boolean => value !== undefined && value.trim() !== "";

function readConfigFile(path: string): { server?: string; token?: string } {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") return {};
    throw userError("CONFIG_UNREADABLE", `cannot read ${path}: ${(e as Error).message}`, "check the file's permissions");
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (e) {
    throw userError("CONFIG_INVALID", `${path} is not valid JSON: ${(e as Error).message}`, 'it should look like {"server": "http://127.0.0.1:7070", "token": "..."}');
  }
  if (!value || typeof value !== "object" || Array.isArray(value)) {
    throw userError("CONFIG_INVALID", `${path} must hold a JSON object`, 'e.g. {"server": "http://127.0.0.1:7070", "token": "..."}');
  }
  const { server, token } = value as Record<string, unknown>;
  for (const [key, v] of [["server", server], ["token", token]] as const) {
    if (v !== undefined && typeof v !== "string") throw userError("CONFIG_INVALID", `${path}: "${key}" must be a string`);
  }
  return { ...(typeof server === "string" ? { server } : {}), ...(typeof token === "string" ? { token } : {}) };
}

/** The token in a file; undefined if the file is missing and not `required`. */
function readTokenFile(path: string, required: boolean): string | undefined {
  let token: string;
  try {
    token = readFileSync(path, "utf8").trim();
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT" && !required) return undefined;
    throw userError("TOKEN_UNREADABLE", `cannot read the API token in ${path}: ${(e as Error).message}`, `check the path and its permissions (a token file should be mode 0600); or pass the token with ${TOKEN_WAYS}`);
  }
  if (required && !token) throw userError("TOKEN_UNREADABLE", `${path} is empty`, "put the token (as printed by `pith token create`) in it");
  return token || undefined;
}
