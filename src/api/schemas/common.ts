import { Type, type TLiteral, type TSchema, type TUnion } from "@sinclair/typebox";
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

/** Environment variable names; PITH_ is reserved for what Pith itself sets. */
export const ENV_NAME_PATTERN = "^[A-Za-z_][A-Za-z0-9_]*$";
export const EnvMap = Type.Record(Type.String({ pattern: ENV_NAME_PATTERN }), Type.String(), {
  ...closed,
  "x-key-rule": "names must be letters, digits and '_', not starting with a digit",
});

/** Metadata a client may send: the store assigns everything else. */
export const InputMetadata = Type.Object(
  {
    name: Name,
    labels: Type.Optional(StringMap),
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
        code: Enum(["Invalid", "Unauthorized", "NotFound", "Conflict", "AlreadyExists", "Gone", "Internal"] as const),
        message: Type.String(),
        hint: Type.Optional(Type.String()),
        details: Type.Optional(Type.Array(ErrorDetail)),
      },
      closed,
    ),
  },
  { ...closed, title: "Error" },
);
