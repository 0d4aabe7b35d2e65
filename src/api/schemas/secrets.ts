import { Type } from "@sinclair/typebox";
import { closed, ENV_MAP_OPTIONS, EnvName, EnvValueString, Name } from "./common.ts";

/**
 * The Secret kind's fields and the `secretRef` form of a Service's env values. A Secret's keys
 * become env values, so each value follows the env rules (one line, bounded).
 */
export const SECRET_KEY_PATTERN = "^[A-Za-z0-9._-]{1,253}$";
const SecretKey = Type.String({ pattern: SECRET_KEY_PATTERN, errorMessage: "must be 1-253 letters, digits, '.', '_' or '-'" });
const KEY_RULE = { "x-key-rule": "keys must be 1-253 letters, digits, '.', '_' or '-'" } as const;

export const SecretKeyRefSchema = Type.Object({ name: Name, key: SecretKey }, closed);

/** A Service's env: plain values, or `{secretRef: {name, key}}`, read when each machine starts. */
export const ServiceEnvMap = Type.Record(
  EnvName,
  Type.Union([EnvValueString, Type.Object({ secretRef: SecretKeyRefSchema }, closed)], {
    errorMessage: "must be a one-line string of at most 4096 bytes, or {secretRef: {name, key}}",
  }),
  ENV_MAP_OPTIONS,
);

export const SecretSpecSchema = Type.Object(
  {
    stringData: Type.Optional(Type.Record(SecretKey, EnvValueString, { ...closed, maxProperties: 128, ...KEY_RULE, description: "write-only: the values to store, by key" })),
    keys: Type.Optional(Type.Record(SecretKey, Type.Object({ hash: Type.String({ maxLength: 128 }) }, closed), { ...closed, maxProperties: 128, description: "set by the server: each key's keyed hash" })),
    sealed: Type.Optional(Type.Record(SecretKey, Type.String({ maxLength: 8192 }), { ...closed, maxProperties: 128, description: "the server's own: never sent, never returned" })),
  },
  { ...closed, description: "send values as stringData; answers carry only keys and their hashes" },
);
