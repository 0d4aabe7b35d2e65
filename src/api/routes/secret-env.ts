import type { Static } from "@sinclair/typebox";
import { Type } from "@sinclair/typebox";
import type { FastifyInstance } from "fastify";
import type { Machine, PithEvent } from "../../model/kinds.ts";
import { API_VERSION } from "../../model/resource.ts";
import { principalOf } from "../principal.ts";
import type { ApiContext } from "../context.ts";
import { errorResponses, NameParams } from "../schemas/requests.ts";
import { openMachineSecretEnv } from "../secret-values.ts";
import { notFound } from "./read-modify-write.ts";
import { randomBytes } from "node:crypto";

const SecretEnvAnswer = Type.Object(
  {
    env: Type.Record(Type.String(), Type.String(), { description: "each variable's value, opened from its Secret" }),
    hashes: Type.Record(Type.String(), Type.String(), { description: "each value's keyed hash (as the Secret shows it)" }),
  },
  { additionalProperties: false },
);
export type SecretEnvAnswer = Static<typeof SecretEnvAnswer>;

/**
 * `GET /api/v1/machines/:name/secret-env`: the values of a machine's `secretEnv`, for the agent
 * that starts it. The only route that answers with a Secret's value: roles.ts lets a node token
 * read it only for the Machines placed on its node (no read-only or proxy token), and every read
 * is recorded as a `SecretsRead` event on the machine, naming the reader and the keys, never a value.
 */
export function registerSecretEnvRoute(app: FastifyInstance, ctx: ApiContext): void {
  app.get<{ Params: Static<typeof NameParams> }>(
    "/api/v1/machines/:name/secret-env",
    {
      schema: {
        summary: "Open the Secret values a machine's env refers to (its node's agent only; audited)",
        tags: ["Machine"],
        params: NameParams,
        response: { 200: SecretEnvAnswer, ...errorResponses(401, 404, 409) },
      },
    },
    async (request) => {
      const { name } = request.params;
      const machine = await ctx.store.get<Machine>("Machine", name);
      if (!machine) throw notFound("Machine", name);
      const answer = await openMachineSecretEnv(ctx.secrets, ctx.store, machine);
      const principal = principalOf(request);
      const who = principal?.role === "node" ? `node ${principal.node} ("${principal.name}")` : `${principal?.role ?? "unknown"} token "${principal?.name ?? "?"}"`;
      const what = Object.entries(machine.spec.secretEnv ?? {}).map(([variable, ref]) => `${variable} (${ref.name}/${ref.key})`).join(", ");
      if (what) await recordRead(ctx, name, `${who} read ${what}`);
      return answer;
    },
  );
}

async function recordRead(ctx: ApiContext, machine: string, message: string): Promise<void> {
  await ctx.store.create<PithEvent>({
    apiVersion: API_VERSION,
    kind: "Event",
    metadata: { name: `${machine}.${Date.now().toString(36)}${randomBytes(2).toString("hex")}`, labels: { "pith.dev/involved-kind": "Machine" } },
    spec: { involved: { kind: "Machine", name: machine }, type: "Normal", reason: "SecretsRead", message, at: new Date().toISOString() },
  });
}
