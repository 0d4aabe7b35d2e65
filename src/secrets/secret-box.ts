import { createCipheriv, createDecipheriv, createHmac, hkdfSync, randomBytes } from "node:crypto";
import { readFile, stat } from "node:fs/promises";
import { join } from "node:path";
import { userError } from "../shared/errors.ts";
import { pithHome } from "../shared/paths.ts";
import { ensurePithHome, writePrivateFile } from "../shared/private-files.ts";

/** The key file beside the store: 32 random bytes, 0600, made at the control plane's first start. */
export const secretsKeyPath = (): string => join(pithHome(), "secrets.key");

const KEY_BYTES = 32;
const IV_BYTES = 12;
const TAG_BYTES = 16;
/** The sealed form's version prefix, so a later format can be told apart from this one. */
const SEALED_PREFIX = "v1.";

/**
 * Seals Secret values at rest (AES-256-GCM) and gives each value a keyed hash for display.
 *
 * Each value is sealed with its place (`secret/KEY` of the Secret's name) as additional data, so
 * a sealed value copied to another Secret or key does not open there. The hash shown to clients
 * is an HMAC, not a plain sha256, so a short password cannot be guessed offline from what any
 * reader of the API sees. Both keys are derived from the one key file (HKDF), never reused.
 */
export class SecretBox {
  readonly #sealKey: Buffer;
  readonly #hashKey: Buffer;

  constructor(key: Uint8Array) {
    if (key.length !== KEY_BYTES) throw new Error(`a secrets key is ${KEY_BYTES} bytes, not ${key.length}`);
    this.#sealKey = Buffer.from(hkdfSync("sha256", key, Buffer.alloc(0), "pith secret seal v1", KEY_BYTES));
    this.#hashKey = Buffer.from(hkdfSync("sha256", key, Buffer.alloc(0), "pith secret hash v1", KEY_BYTES));
  }

  /** The box for this PITH_HOME: its key file, created 0600 with a random key on first use. */
  static async forHome(path = secretsKeyPath()): Promise<SecretBox> {
    await ensurePithHome();
    try {
      await writePrivateFile(path, randomBytes(KEY_BYTES), "wx");
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== "EEXIST") throw error;
    }
    const mode = (await stat(path)).mode & 0o777;
    if ((mode & 0o077) !== 0) {
      throw userError("SECRETS_KEY_EXPOSED", `${path} has mode ${mode.toString(8)}: other users may have read the key to every Secret`, `chmod 600 ${path}, and rotate the Secrets' values`);
    }
    const key = await readFile(path);
    if (key.length !== KEY_BYTES) {
      throw userError("SECRETS_KEY_INVALID", `${path} holds ${key.length} bytes, not a ${KEY_BYTES}-byte key`, "restore the key file from a backup; without it no stored Secret can be read");
    }
    return new SecretBox(key);
  }

  seal(place: string, value: string): string {
    const iv = randomBytes(IV_BYTES);
    const cipher = createCipheriv("aes-256-gcm", this.#sealKey, iv);
    cipher.setAAD(Buffer.from(place));
    const body = Buffer.concat([cipher.update(value, "utf8"), cipher.final()]);
    return SEALED_PREFIX + Buffer.concat([iv, cipher.getAuthTag(), body]).toString("base64");
  }

  /** The value, or an error if it was sealed with another key, for another place, or altered. */
  open(place: string, sealed: string): string {
    const raw = sealed.startsWith(SEALED_PREFIX) ? Buffer.from(sealed.slice(SEALED_PREFIX.length), "base64") : Buffer.alloc(0);
    if (raw.length < IV_BYTES + TAG_BYTES) throw new SecretUnreadable(place, "it is not a sealed value");
    const decipher = createDecipheriv("aes-256-gcm", this.#sealKey, raw.subarray(0, IV_BYTES));
    decipher.setAAD(Buffer.from(place));
    decipher.setAuthTag(raw.subarray(IV_BYTES, IV_BYTES + TAG_BYTES));
    try {
      return Buffer.concat([decipher.update(raw.subarray(IV_BYTES + TAG_BYTES)), decipher.final()]).toString("utf8");
    } catch {
      throw new SecretUnreadable(place, "it was sealed with another key or altered");
    }
  }

  /** What clients see of a value: changes when the value does, reveals nothing else. */
  hash(place: string, value: string): string {
    return `hmac-sha256:${createHmac("sha256", this.#hashKey).update(place).update("\0").update(value).digest("hex").slice(0, 32)}`;
  }
}

export class SecretUnreadable extends Error {
  constructor(place: string, why: string) {
    super(`the stored value of ${place} cannot be opened: ${why}`);
  }
}

/** Where a value lives, bound into its seal and hash: `name/key`. */
export const secretPlace = (secret: string, key: string): string => `${secret}/${key}`;
