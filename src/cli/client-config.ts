import { readFileSync } from "node:fs";
import { homedir } from "node:os";
import { join } from "node:path";
import type { Command } from "commander";
import { PithClient } from "../client/pith-client.ts";
import { userError } from "../shared/errors.ts";

export const DEFAULT_SERVER = "http://127.0.0.1:7070";

/** Where each setting came from, for error messages ("the token from PITH_TOKEN was refused"). */
export type ConfigSource = "flag" | "env" | "config" | "default" | "token-file";

export interface ClientConfig {
  server: string;
  token: string;
  from: { server: ConfigSource; token: ConfigSource };
}

export interface ConfigInputs {
  flags: { server?: string | undefined; token?: string | undefined };
  env?: NodeJS.ProcessEnv;
}

/** The global --server / --token options every command talking to the control plane uses. */
export function registerClientOptions(program: Command): void {
  program
    .option("--server <url>", `the Pith control plane (env PITH_SERVER; default ${DEFAULT_SERVER})`)
    .option("--token <token>", "API token (env PITH_TOKEN; default: $PITH_HOME/token)");
}

/**
 * Where to find the control plane and how to authenticate, first found wins:
 * --server/--token flags, then PITH_SERVER/PITH_TOKEN, then $PITH_HOME/config.json
 * `{ "server", "token" }`, then the defaults: http://127.0.0.1:7070 and the token the control plane
 * wrote to $PITH_HOME/token at its first start. ($PITH_HOME defaults to ~/.pith.)
 */
export function resolveClientConfig({ flags, env = process.env }: ConfigInputs): ClientConfig {
  const home = env.PITH_HOME || join(homedir(), ".pith");
  const file = readConfigFile(join(home, "config.json"));
  const pick = (flag: string | undefined, envValue: string | undefined, fileValue: string | undefined): [string, ConfigSource] | undefined =>
    nonEmpty(flag) ? [flag!, "flag"] : nonEmpty(envValue) ? [envValue!, "env"] : nonEmpty(fileValue) ? [fileValue!, "config"] : undefined;

  const [server, serverFrom] = pick(flags.server, env.PITH_SERVER, file.server) ?? [DEFAULT_SERVER, "default"];
  let token = pick(flags.token, env.PITH_TOKEN, file.token);
  if (!token) {
    const tokenFile = join(home, "token");
    const fromFile = readTokenFile(tokenFile);
    if (!fromFile) {
      throw userError(
        "NO_TOKEN",
        `no API token for the Pith control plane at ${server}: none given, and ${tokenFile} does not exist`,
        "pass --token or set PITH_TOKEN (the control plane writes its token to $PITH_HOME/token on its host), or start a local one with `pith up`",
      );
    }
    token = [fromFile, "token-file"];
  }
  return { server, token: token[0], from: { server: serverFrom, token: token[1] } };
}

/** A client for the command's resolved server and token (global options read via optsWithGlobals). */
export function clientFor(command: Command, env: NodeJS.ProcessEnv = process.env): PithClient {
  const flags = command.optsWithGlobals<{ server?: string; token?: string }>();
  const config = resolveClientConfig({ flags: { server: flags.server, token: flags.token }, env });
  return new PithClient({ server: config.server, token: config.token });
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

function readTokenFile(path: string): string | undefined {
  try {
    const token = readFileSync(path, "utf8").trim();
    return token || undefined;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw userError("TOKEN_UNREADABLE", `cannot read the API token in ${path}: ${(e as Error).message}`, "it is readable only by the user who ran the control plane (mode 0600): run as that user, or pass --token");
  }
}
