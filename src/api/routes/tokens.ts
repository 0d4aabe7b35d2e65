import { Type, type Static } from "@sinclair/typebox";
import type { FastifyInstance } from "fastify";
import { ROLES, type TokenRecord } from "../../model/token.ts";
import { StoreError } from "../../store/store.ts";
import type { TokenRegistry } from "../../store/token-registry.ts";
import { ApiError } from "../api-error.ts";
import { closed, Name } from "../schemas/common.ts";
import { errorResponses } from "../schemas/requests.ts";
import { issueToken } from "../token.ts";
import type { TokenSessions } from "../token-sessions.ts";
import { invalid } from "../validation.ts";

const TokenRecordSchema = Type.Object(
  {
    id: Type.String({ description: "16 hex digits; the token's secret starts with pith_<id>_" }),
    name: Type.String(),
    role: Type.Union(ROLES.map((role) => Type.Literal(role))),
    node: Type.Optional(Type.String({ description: "the node a node token acts for" })),
    createdAt: Type.String({ format: "date-time" }),
  },
  { description: "An API token as the control plane keeps it: never its secret or the secret's hash" },
);

const CreateTokenBody = Type.Object(
  {
    role: Type.Union(ROLES.map((role) => Type.Literal(role))),
    node: Type.Optional(Name),
    name: Type.Optional(Name),
  },
  closed,
);

const TokenParams = Type.Object({ token: Type.String({ minLength: 1, maxLength: 253, description: "the token's id or name" }) }, closed);

export interface TokenRouteOptions {
  tokens: TokenRegistry | undefined;
  sessions: TokenSessions;
}

/**
 * `/api/v1/tokens`: create (the secret is in this one answer and nowhere else), list, revoke.
 * Admin only (roles.ts). Revoking also cuts the token's open connections: its watches, console
 * follows and tunnels end at once.
 */
export function registerTokenRoutes(app: FastifyInstance, options: TokenRouteOptions): void {
  const registry = (): TokenRegistry => {
    if (!options.tokens) throw new ApiError("NotFound", "this control plane keeps no tokens besides its admin token", "start it with a store (pith up / pith server do)");
    return options.tokens;
  };
  const tags = ["Token"];

  app.get(
    "/api/v1/tokens",
    {
      schema: {
        summary: "List API tokens (never their secrets)",
        tags,
        response: { 200: Type.Object({ items: Type.Array(TokenRecordSchema) }), ...errorResponses(401, 404) },
      },
    },
    async () => ({ items: await registry().list() }),
  );

  app.post<{ Body: Static<typeof CreateTokenBody> }>(
    "/api/v1/tokens",
    {
      schema: {
        summary: "Create an API token with a role; the answer holds its secret, shown this once",
        description: "role node needs node (the node the agent runs as); other roles take none. name defaults to <role>[-<node>]-<id prefix>.",
        tags,
        body: CreateTokenBody,
        response: {
          201: Type.Object({ token: TokenRecordSchema, secret: Type.String({ description: "the bearer token: pith_<id>_<64 hex digits>" }) }, { description: "created" }),
          ...errorResponses(400, 401, 404, 409),
        },
      },
    },
    async (request, reply) => {
      const { role, node, name } = request.body;
      if (role === "node" && node === undefined) throw invalid("request body", [{ path: "/node", message: "is required for role node: the node this agent runs as" }]);
      if (role !== "node" && node !== undefined) throw invalid("request body", [{ path: "/node", message: `applies only to role node, not ${role}` }]);
      let issued: { record: TokenRecord; token: string };
      try {
        issued = await issueToken(registry(), { role, ...(node ? { node } : {}), ...(name ? { name } : {}) });
      } catch (error) {
        if (error instanceof StoreError && error.code === "AlreadyExists") {
          throw new ApiError("AlreadyExists", error.message, "choose another name, or revoke the old token first (DELETE /api/v1/tokens/NAME)");
        }
        throw error;
      }
      return reply.code(201).send({ token: issued.record, secret: issued.token });
    },
  );

  app.delete<{ Params: Static<typeof TokenParams> }>(
    "/api/v1/tokens/:token",
    {
      schema: {
        summary: "Revoke an API token (by id or name); its open watches and tunnels are cut",
        tags,
        params: TokenParams,
        response: { 200: { ...TokenRecordSchema, description: "the revoked token" }, ...errorResponses(400, 401, 404) },
      },
    },
    async (request, reply) => {
      const revoked = await registry().revoke(request.params.token);
      if (!revoked) throw new ApiError("NotFound", `no token with id or name ${request.params.token}`, "GET /api/v1/tokens (pith token ls) lists them");
      // After this answer is written: a token revoking itself still hears that it worked.
      reply.raw.once("finish", () => options.sessions.endAll(revoked.id));
      return revoked;
    },
  );
}
