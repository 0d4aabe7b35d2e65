import { Type, type TLiteral, type TSchema, type TUnion } from "@sinclair/typebox";
import { ENV_LIMITS, ENV_VALUE_PATTERN } from "../../model/env-rules.ts";
import { API_VERSION, type Kind } from "../../model/resource.ts";

/**
 * Building blocks shared by every kind's schemas. Every object schema is closed
 * (`additionalProperties: false`): a misspelt field is an error, never silently dropped.
 *
 * `errorMessage` on a schema replaces the generic message for that value (see problems.ts);
 * `x-key-rule` explains which keys a string map accepts.
 */
export const closed = { additionalProperties: false } as const;

export const NAME_PATTERN = "^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$";
const NAME_RULE = "must be 1-253 lower-case letters, digits, '-' or '.', starting and ending with a letter or digit";

export const Name = Type.String({ pattern: NAME_PATTERN, maxLength: 253, errorMessage: NAME_RULE });

/** A decimal revision, as the store hands them out. */
export const ResourceVersion = Type.String({ pattern: "^(0|[1-9][0-9]{0,15})$", errorMessage: "must be a revision (a decimal integer)" });

export const StringMap = Type.Record(Type.String(), Type.String(), closed);

/** Labels are selected by `key=value,...` (so neither may hold '=' or ','), and stay small. */
export const LABEL_LIMITS = { entries: 64, keyLength: 253, valueLength: 253 } as const;
export const Labels = Type.Record(
  Type.String({ pattern: `^[^=,\\u0000-\\u001f]{1,${LABEL_LIMITS.keyLength}}$` }),
  Type.String({ pattern: "^[^,\\u0000-\\u001f]*$", maxLength: LABEL_LIMITS.valueLength, errorMessage: `must be at most ${LABEL_LIMITS.valueLength} characters, without ',' or control characters` }),
  {
    ...closed,
    maxProperties: LABEL_LIMITS.entries,
    "x-key-rule": `keys must be 1-${LABEL_LIMITS.keyLength} characters, without '=', ',' or control characters`,
  },
);

/**
 * Environment variable names and values (see model/env-rules.ts, which the body refinements also
 * apply for what JSON Schema cannot count: UTF-8 bytes and the total); PITH_ is reserved.
 */
export const ENV_NAME_PATTERN = `^[A-Za-z_][A-Za-z0-9_]{0,${ENV_LIMITS.nameLength - 1}}$`;
export const EnvName = Type.String({ pattern: ENV_NAME_PATTERN });
/** One env value (also what a Secret's key may hold, since it reaches the guest as env). */
export const EnvValueString = Type.String({
  pattern: ENV_VALUE_PATTERN,
  maxLength: ENV_LIMITS.valueBytes,
  errorMessage: `must be one line (no line break, CR or NUL) of at most ${ENV_LIMITS.valueBytes} bytes`,
});
export const ENV_MAP_OPTIONS = {
  ...closed,
  maxProperties: ENV_LIMITS.entries,
  "x-key-rule": `names must be 1-${ENV_LIMITS.nameLength} letters, digits and '_', not starting with a digit`,
} as const;
export const EnvMap = Type.Record(EnvName, EnvValueString, ENV_MAP_OPTIONS);

/** Metadata a client may send: the store assigns everything else. */
export const InputMetadata = Type.Object(
  {
    name: Name,
    labels: Type.Optional(Labels),
    resourceVersion: Type.Optional(ResourceVersion),
  },
  closed,
);

/** Metadata as the server returns it. */
export const ObjectMeta = Type.Object(
  {
    name: Type.String(),
    uid: Type.String(),
    resourceVersion: Type.String(),
    generation: Type.Integer(),
    labels: StringMap,
    createdAt: Type.String(),
    updatedAt: Type.String(),
  },
  closed,
);

export const NonNegativeInt = (options: { maximum?: number; description?: string } = {}) => Type.Integer({ minimum: 0, ...options });

type Literals<T extends readonly string[]> = { -readonly [I in keyof T]: TLiteral<T[I]> };

/** One of fixed strings (a union of literals, which JSON Schema renders as anyOf/const). */
export function Enum<const T extends readonly string[]>(values: T, options: { description?: string } = {}): TUnion<Literals<T>> {
  // Type.Union cannot see through the mapped tuple type; the runtime value is exactly that tuple.
  return Type.Union(values.map((v) => Type.Literal(v)), options) as unknown as TUnion<Literals<T>>;
}

export function resourceSchema<K extends Kind, S extends TSchema, St extends TSchema>(kind: K, spec: S, status: St) {
  return Type.Object(
    { apiVersion: Type.Literal(API_VERSION), kind: Type.Literal(kind), metadata: ObjectMeta, spec, status },
    { ...closed, title: kind },
  );
}

export function inputSchema<K extends Kind, S extends TSchema, St extends TSchema>(kind: K, spec: S, status: St) {
  return Type.Object(
    {
      apiVersion: Type.Literal(API_VERSION),
      kind: Type.Literal(kind),
      metadata: InputMetadata,
      spec,
      status: Type.Optional(status),
    },
    { ...closed, title: `${kind}Input` },
  );
}

export const ErrorDetail = Type.Object({ path: Type.String(), message: Type.String() }, closed);

export const ErrorBody = Type.Object(
  {
    error: Type.Object(
      {
        code: Enum(["Invalid", "Unauthorized", "NotFound", "Conflict", "AlreadyExists", "Gone", "TooLarge", "TooManyRequests", "Internal", "Unavailable"] as const),
        message: Type.String(),
        hint: Type.Optional(Type.String()),
        details: Type.Optional(Type.Array(ErrorDetail)),
      },
      closed,
    ),
  },
  { ...closed, title: "Error" },
);
