/**
 * A reference to an image in an OCI registry: `REGISTRY/REPO[:TAG|@sha256:HEX]`.
 *
 * Pure and free of node: modules, since the API's schemas (which the GUI bundles) use the
 * pattern. The grammar is the distribution spec's, narrowed:
 * - REGISTRY is a host (DNS name, IPv4 or [IPv6]) with an optional port, and must look like one
 *   (a dot, a colon or `localhost`), so `hello-ts` stays a local image name and there is no
 *   default registry to contact by surprise;
 * - REPO is lowercase path components separated by `/` (no `.` or `..` component, no empty one);
 * - TAG is `[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`, DIGEST is `sha256:` and 64 lowercase hex digits.
 *
 * A registry reference is never joined into a path: pulled images are stored by their digest.
 */
const HOST_LABEL = "[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?";
const PORT = ":(?:6553[0-5]|655[0-2][0-9]|65[0-4][0-9]{2}|6[0-4][0-9]{3}|[1-5][0-9]{4}|[1-9][0-9]{0,3})";
/** A dotted name or IPv4, a bare name with a port, localhost, or [IPv6]: never a bare word. */
const REGISTRY = `(?:${HOST_LABEL}(?:\\.${HOST_LABEL})+(?:${PORT})?|${HOST_LABEL}${PORT}|localhost|\\[[0-9A-Fa-f:.]+\\](?:${PORT})?)`;
const COMPONENT = "[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*";
const REPOSITORY = `${COMPONENT}(?:/${COMPONENT})*`;
const TAG = "[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}";
const DIGEST = "sha256:[0-9a-f]{64}";

/** For schemas: a registry reference with a tag or a digest (or neither: the tag `latest`). */
export const REGISTRY_REFERENCE_PATTERN = `^${REGISTRY}/${REPOSITORY}(?::${TAG})?(?:@${DIGEST})?$`;
/** A reference pinned to a manifest digest, as Images and Machines record where to pull. */
export const PINNED_REFERENCE_PATTERN = `^${REGISTRY}/${REPOSITORY}@${DIGEST}$`;
export const REGISTRY_REFERENCE_RULE = "a registry reference: REGISTRY[:PORT]/REPO[:TAG] or REGISTRY[:PORT]/REPO@sha256:<64 hex>";
export const DEFAULT_TAG = "latest";
/** Repository names longer than this are refused by registries anyway; it bounds URLs. */
const MAX_REFERENCE_LENGTH = 253;

const SHAPE = new RegExp(`^(${REGISTRY})/(${REPOSITORY})(?::(${TAG}))?(?:@(${DIGEST}))?$`);

export interface RegistryReference {
  /** host[:port], as written. */
  registry: string;
  repository: string;
  tag?: string;
  /** The manifest's digest, when the reference pins one. */
  digest?: string;
}

/** True when `text` has a registry's shape (contains a `/` and its first part looks like a host). */
export function isRegistryReference(text: string): boolean {
  return parseRegistryReferenceOrUndefined(text) !== undefined;
}

export function parseRegistryReferenceOrUndefined(text: string): RegistryReference | undefined {
  if (text.length > MAX_REFERENCE_LENGTH) return undefined;
  const match = SHAPE.exec(text);
  if (!match) return undefined;
  const [, registry, repository, tag, digest] = match as unknown as [string, string, string, string | undefined, string | undefined];
  return { registry, repository, ...(tag !== undefined ? { tag } : {}), ...(digest !== undefined ? { digest } : {}) };
}

/** Parses a reference or throws an Error saying what the grammar is (callers wrap it for their audience). */
export function parseRegistryReference(text: string): RegistryReference {
  const parsed = parseRegistryReferenceOrUndefined(text);
  if (!parsed) {
    const shown = JSON.stringify(text.length > 80 ? `${text.slice(0, 80)}…` : text);
    throw new Error(`${shown} is not ${REGISTRY_REFERENCE_RULE}`);
  }
  return parsed;
}

/** `registry/repo`, the part that names where blobs live. */
export const repositoryName = (ref: RegistryReference): string => `${ref.registry}/${ref.repository}`;

/** The reference pinned to a manifest digest: what a Machine pulls, always the same bytes. */
export const pinnedReference = (ref: RegistryReference, digest: string): string => `${repositoryName(ref)}@${digest}`;

export function formatReference(ref: RegistryReference): string {
  return `${repositoryName(ref)}${ref.tag !== undefined ? `:${ref.tag}` : ""}${ref.digest !== undefined ? `@${ref.digest}` : ""}`;
}

/** What to ask the registry for: the digest when pinned (the tag is then only a label), else the tag. */
export const manifestSelector = (ref: RegistryReference): string => ref.digest ?? ref.tag ?? DEFAULT_TAG;

/** The host without its port or brackets. */
export function registryHost(registry: string): string {
  if (registry.startsWith("[")) return registry.slice(1, registry.indexOf("]"));
  const colon = registry.lastIndexOf(":");
  return colon >= 0 ? registry.slice(0, colon) : registry;
}

/**
 * Loopback registries are spoken to over plain HTTP (as docker does): the bytes never leave the
 * host. Every other registry over HTTPS, unless listed in PITH_INSECURE_REGISTRIES.
 */
export function isLoopbackRegistry(registry: string): boolean {
  const host = registryHost(registry).toLowerCase();
  return host === "localhost" || host === "::1" || /^127\.[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}$/.test(host);
}
