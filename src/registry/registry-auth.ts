import { readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { userError } from "../shared/errors.ts";
import { pithHome } from "../shared/paths.ts";
import { printable } from "./printable.ts";

/**
 * Registry credentials, per registry (host:port as references write it), never from argv:
 * - PITH_REGISTRY_AUTH: the JSON itself, for processes started with secrets in their env;
 * - otherwise the file PITH_REGISTRY_AUTH_FILE, default $PITH_HOME/registry-auth.json, which must
 *   be its owner's alone (mode 0600 or tighter), as ssh asks of keys.
 *
 *   { "registry.example:5000": { "username": "ci", "password": "..." },
 *     "127.0.0.1:5001": { "token": "..." } }
 *
 * A credential goes only to the registry it is filed under, and to that registry's own token
 * endpoint: a service naming another registry never receives it.
 */
export type Credential = { username: string; password: string } | { token: string };

export const AUTH_FILE_ENV = "PITH_REGISTRY_AUTH_FILE";
export const AUTH_ENV = "PITH_REGISTRY_AUTH";
export const defaultAuthFile = (env: NodeJS.ProcessEnv = process.env): string => join(env.PITH_HOME ?? pithHome(), "registry-auth.json");

export function credentialFor(registry: string, env: NodeJS.ProcessEnv = process.env): Credential | undefined {
  const table = credentialTable(env);
  return table[registry];
}

function credentialTable(env: NodeJS.ProcessEnv): Record<string, Credential> {
  const inline = env[AUTH_ENV];
  if (inline !== undefined && inline !== "") return parseCredentials(inline, AUTH_ENV);
  const file = env[AUTH_FILE_ENV] ?? defaultAuthFile(env);
  let mode: number;
  try {
    mode = statSync(file).mode;
  } catch {
    if (env[AUTH_FILE_ENV] !== undefined) throw userError("REGISTRY_AUTH_FILE", `cannot read ${file} (${AUTH_FILE_ENV})`, "give the path of a JSON file of registry credentials");
    return {};
  }
  if ((mode & 0o077) !== 0) throw userError("REGISTRY_AUTH_FILE", `${file} holds registry credentials but others may read it (mode ${(mode & 0o777).toString(8)})`, `chmod 600 ${file}`);
  return parseCredentials(readFileSync(file, "utf8"), file);
}

export function parseCredentials(text: string, source: string): Record<string, Credential> {
  const fix = `${source} must be JSON: {"host:port": {"username": "...", "password": "..."} or {"token": "..."}}`;
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw userError("REGISTRY_AUTH_INVALID", `${source} is not JSON`, fix);
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) throw userError("REGISTRY_AUTH_INVALID", `${source} is not a JSON object`, fix);
  const table: Record<string, Credential> = Object.create(null) as Record<string, Credential>;
  for (const [registry, entry] of Object.entries(value as Record<string, unknown>)) {
    const e = entry as Record<string, unknown> | null;
    if (e && typeof e.username === "string" && typeof e.password === "string") table[registry] = { username: e.username, password: e.password };
    else if (e && typeof e.token === "string") table[registry] = { token: e.token };
    else throw userError("REGISTRY_AUTH_INVALID", `${source}: the entry for ${JSON.stringify(printable(registry))} has neither username and password nor token`, fix);
  }
  return table;
}

export function basicAuthorization(credential: { username: string; password: string }): string {
  return `Basic ${Buffer.from(`${credential.username}:${credential.password}`).toString("base64")}`;
}

export interface Challenge {
  scheme: string;
  params: Record<string, string>;
}

/** Parses `WWW-Authenticate: Bearer realm="...",service="...",scope="..."` (or Basic). */
export function parseChallenge(header: string | undefined): Challenge | undefined {
  if (!header) return undefined;
  const match = /^\s*([A-Za-z]+)\s*(.*)$/s.exec(header);
  if (!match) return undefined;
  const params: Record<string, string> = Object.create(null) as Record<string, string>;
  for (const p of match[2]!.matchAll(/([A-Za-z_]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]*))/g)) {
    params[p[1]!.toLowerCase()] = p[2] !== undefined ? p[2].replace(/\\(.)/g, "$1") : p[3]!;
  }
  return { scheme: match[1]!.toLowerCase(), params };
}

/**
 * Where a bearer challenge says to get a token, if Pith may go there: only the registry's own
 * origin (same scheme, host and port). A registry that names another host would have Pith
 * contact, and send credentials to, a place the reference never named.
 */
export function tokenRealm(challenge: Challenge, registryBase: URL): URL {
  const realm = challenge.params.realm;
  if (!realm) throw new Error("the registry asked for a bearer token but named no realm");
  let url: URL;
  try {
    url = new URL(realm);
  } catch {
    throw new Error(`the registry's token realm ${JSON.stringify(printable(realm, 200))} is not a URL`);
  }
  if (url.origin !== registryBase.origin) {
    throw new Error(`the registry's token realm ${url.origin} is not the registry itself (${registryBase.origin}); Pith contacts only the registry a reference names`);
  }
  return url;
}
