import { APP_NAME_PATTERN } from "../manifest/name.ts";
import { userError } from "../shared/errors.ts";

/**
 * What may name an image, and so what may ever be joined into a path under the image store:
 *
 * - a full digest, `sha256:<64 hex>` or the 64 hex digits alone;
 * - a digest prefix, at least MIN_DIGEST_PREFIX hex digits, with or without `sha256:`;
 * - an image name, the manifest's grammar (a DNS label: lowercase letters, digits, dashes).
 *
 * None of these can hold `/`, `.`, NUL or any other character a path gives meaning to, so a
 * reference that passes can name a directory entry and nothing else. Every way in (the CLI,
 * the API, the controllers) resolves through resolveImage, which checks first.
 */
export const MIN_DIGEST_PREFIX = 4;

export const IMAGE_NAME_PATTERN = APP_NAME_PATTERN;
export const DIGEST_PATTERN = "^(sha256:)?[0-9a-f]{64}$";
const DIGEST_PREFIX_PATTERN = `^(sha256:)?[0-9a-f]{${MIN_DIGEST_PREFIX},64}$`;
/** For schemas (the API's): any of the three forms. */
export const IMAGE_REFERENCE_PATTERN = `${IMAGE_NAME_PATTERN}|${DIGEST_PREFIX_PATTERN}`;
export const IMAGE_REFERENCE_RULE = `must be an image name (lowercase letters, digits and dashes), a digest (sha256:<64 hex>) or at least ${MIN_DIGEST_PREFIX} hex digits of one`;

const IMAGE_NAME = new RegExp(IMAGE_NAME_PATTERN);
const DIGEST = new RegExp(DIGEST_PATTERN);
const DIGEST_PREFIX = new RegExp(DIGEST_PREFIX_PATTERN);

export interface ImageReference {
  /** The reference as given. */
  text: string;
  /** Set when it can be an image name (a short hex string is both a name and a prefix). */
  name?: string;
  /** The hex digits, when it can be a digest or a prefix of one. */
  hex?: string;
  /** True when `hex` is a whole digest. */
  full: boolean;
}

export const isDigest = (text: string): boolean => DIGEST.test(text);

/** Parses a reference, or throws a user error saying what is allowed. */
export function parseImageReference(text: string): ImageReference {
  const name = IMAGE_NAME.test(text) ? text : undefined;
  const hex = DIGEST_PREFIX.test(text) ? text.replace(/^sha256:/, "") : undefined;
  if (name === undefined && hex === undefined) throw invalidImageReference(text);
  return { text, ...(name !== undefined ? { name } : {}), ...(hex !== undefined ? { hex } : {}), full: hex?.length === 64 };
}

/** An image name, for paths (names/<name>); anything else is refused. */
export function imageName(text: string): string {
  if (!IMAGE_NAME.test(text)) throw invalidImageReference(text, "an image name (lowercase letters, digits and dashes)");
  return text;
}

/** The 64 hex digits of a full digest, for paths; anything else is refused. */
export function digestHex(digest: string): string {
  if (!DIGEST.test(digest)) throw invalidImageReference(digest, "a digest (sha256:<64 hex>)");
  return digest.replace(/^sha256:/, "");
}

function invalidImageReference(text: string, expected?: string): Error {
  const shown = JSON.stringify(text.length > 80 ? `${text.slice(0, 80)}…` : text);
  return userError(
    "INVALID_IMAGE_REFERENCE",
    `${shown} is not ${expected ?? "an image reference"}`,
    expected ? `give ${expected}` : `an image reference ${IMAGE_REFERENCE_RULE.replace(/^must be /, "is ")}; see \`pith images\``,
  );
}
