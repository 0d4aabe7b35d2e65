import { KINDS, type Kind } from "../model/resource.ts";
import { userError } from "../shared/errors.ts";

/** What a person may type for each kind, like kubectl: singular, plural, short name. */
export const KIND_ALIASES: Record<Kind, readonly string[]> = {
  Service: ["service", "services", "svc"],
  Machine: ["machine", "machines", "m"],
  Node: ["node", "nodes", "no"],
  Image: ["image", "images", "img"],
  Event: ["event", "events", "ev"],
  Secret: ["secret", "secrets"],
  Volume: ["volume", "volumes", "vol"],
};

const BY_ALIAS = new Map<string, Kind>(KINDS.flatMap((kind) => KIND_ALIASES[kind].map((alias) => [alias, kind] as const)));

export const validKinds = (): string => KINDS.map((k) => `${KIND_ALIASES[k][0]} (${KIND_ALIASES[k].slice(1).join(", ")})`).join(", ");

/** Resolves "svc", "Services", "machine"... to a Kind; anything else is a user error listing the valid ones. */
export function resolveKind(word: string): Kind {
  const kind = BY_ALIAS.get(word.trim().toLowerCase());
  if (kind) return kind;
  throw userError("UNKNOWN_KIND", `unknown kind "${word}"`, `use one of: ${validKinds()}`);
}

/** The kind as printed before a name: `service/web`. */
export const kindWord = (kind: Kind): string => KIND_ALIASES[kind][0]!;

/** `service/web` for messages like "service/web created". */
export const objectRef = (kind: Kind, name: string): string => `${kindWord(kind)}/${name}`;

/**
 * The KIND [NAME] arguments of get/describe/delete: also accepts kubectl's `KIND/NAME` form.
 * Giving both `svc/web` and a name is an error.
 */
export function parseKindAndName(kindArg: string, nameArg: string | undefined): { kind: Kind; name: string | undefined } {
  const slash = kindArg.indexOf("/");
  if (slash < 0) return { kind: resolveKind(kindArg), name: nameArg };
  if (nameArg !== undefined) throw userError("BAD_ARGUMENTS", `give either ${kindArg} or a kind and a name, not both`, `e.g. pith get ${kindArg}`);
  const name = kindArg.slice(slash + 1);
  if (!name) throw userError("BAD_ARGUMENTS", `${kindArg}: the name after "/" is missing`, "e.g. service/web");
  return { kind: resolveKind(kindArg.slice(0, slash)), name };
}
