import type { FastifyRequest } from "fastify";
import type { Role } from "../model/token.ts";

/** Who a request acts for: the role of the token it presented. */
export interface Principal {
  role: Role;
  /** The node a `node` token acts for. */
  node?: string;
  /** The registry's id; undefined for the bootstrap admin token in $PITH_HOME/token. */
  tokenId?: string;
  /** For messages: the token's name. */
  name: string;
}

const principals = new WeakMap<FastifyRequest, Principal>();

export const setPrincipal = (request: FastifyRequest, principal: Principal): void => void principals.set(request, principal);

/** The request's principal; undefined only on open routes (healthz, the GUI's assets). */
export const principalOf = (request: FastifyRequest): Principal | undefined => principals.get(request);
