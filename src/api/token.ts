import { createHash, randomBytes } from "node:crypto";
import { link, readFile, unlink } from "node:fs/promises";
import { join } from "node:path";
import { userError } from "../shared/errors.ts";
import { pithHome } from "../shared/paths.ts";
import { ensurePrivateDir, tightenPrivateFiles, writePrivateFile } from "../shared/private-files.ts";
import type { Role, TokenRecord } from "../model/token.ts";
import type { TokenRegistry } from "../store/token-registry.ts";

export const TOKEN_FILE = "token";

/**
 * The API's bearer token: `<dir>/token`, 32 random bytes as hex, readable by its owner only.
 * Created on first start; afterwards the existing token is returned, and a file mode looser than
 * 0600 is tightened. The file appears atomically (written aside, then hard-linked into place, which
 * fails if it exists), so two servers starting at once agree on one token and never read half a file.
 */
export async function ensureToken(dir: string = pithHome()): Promise<string> {
  const path = join(dir, TOKEN_FILE);
  await ensurePrivateDir(dir);
  const created = await createToken(path);
  if (created) return created;
  await tightenPrivateFiles(path);
  const existing = (await readFile(path, "utf8")).trim();
  if (!/^[0-9a-f]{64}$/.test(existing)) {
    throw userError("InvalidToken", `${path} does not hold an API token (64 hex digits)`, `delete ${path} and start the control plane again to create a new one`);
  }
  return existing;
}

/** Creates the token file unless it exists; returns the new token, or undefined if it existed. */
async function createToken(path: string): Promise<string | undefined> {
  const token = randomBytes(32).toString("hex");
  const aside = `${path}.${process.pid}.${randomBytes(4).toString("hex")}`;
  await writePrivateFile(aside, `${token}\n`, "wx");
  try {
    await link(aside, path);
    return token;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "EEXIST") return undefined;
    throw error;
  } finally {
    await unlink(aside).catch(() => {});
  }
}

/** A token from the registry: `pith_<id>_<secret>`, the id in clear so the check finds one row. */
const REGISTRY_TOKEN = /^pith_([0-9a-f]{16})_([0-9a-f]{64})$/;

export interface NewRegistryToken {
  id: string;
  /** What the holder presents; shown once, never stored. */
  token: string;
  /** sha256 of the secret part: what the registry keeps. */
  digest: Buffer;
}

export function newRegistryToken(): NewRegistryToken {
  const id = randomBytes(8).toString("hex");
  const secret = randomBytes(32).toString("hex");
  return { id, token: `pith_${id}_${secret}`, digest: sha256(secret) };
}

/** The id and the secret's digest of a presented registry token; undefined if it is not one. */
export function parseRegistryToken(token: string): { id: string; digest: Buffer } | undefined {
  const match = REGISTRY_TOKEN.exec(token);
  return match ? { id: match[1]!, digest: sha256(match[2]!) } : undefined;
}

export const sha256 = (value: string): Buffer => createHash("sha256").update(value).digest();

/** Adds a fresh token to the registry; returns its record and the token, which exists nowhere else. */
export async function issueToken(registry: TokenRegistry, request: { role: Role; node?: string; name?: string }): Promise<{ record: TokenRecord; token: string }> {
  const fresh = newRegistryToken();
  const { role, node } = request;
  const name = request.name ?? `${role}${node ? `-${node}` : ""}-${fresh.id.slice(0, 6)}`;
  const record = await registry.add({ id: fresh.id, name, role, ...(node ? { node } : {}) }, fresh.digest);
  return { record, token: fresh.token };
}

/**
 * Replaces the registry token named `request.name` with a fresh one and returns it. For a process
 * that mints its own token at every start (`pith up` for its agent and proxy): it keeps one token
 * under that name, not one per start.
 */
export async function reissueToken(registry: TokenRegistry, request: { name: string; role: Role; node?: string }): Promise<string> {
  await registry.revoke(request.name);
  return (await issueToken(registry, request)).token;
}
