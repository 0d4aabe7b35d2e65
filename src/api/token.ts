import { randomBytes } from "node:crypto";
import { link, readFile, unlink } from "node:fs/promises";
import { join } from "node:path";
import { userError } from "../shared/errors.ts";
import { pithHome } from "../shared/paths.ts";
import { ensurePrivateDir, tightenPrivateFiles, writePrivateFile } from "../shared/private-files.ts";

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
