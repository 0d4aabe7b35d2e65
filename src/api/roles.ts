import type { FastifyRequest } from "fastify";
import type { EventSpec, Machine, MachineStatus, NodeSpec, PithNode, Volume, VolumeStatus } from "../model/kinds.ts";
import type { Role } from "../model/token.ts";
import type { Store } from "../store/store.ts";
import { ApiError } from "./api-error.ts";
import type { Principal } from "./principal.ts";

/**
 * What each role may do, decided per route pattern. Anything not granted below is refused, so a
 * route added later is admin-only until someone decides otherwise.
 *
 * - admin: everything.
 * - read-only: GET (and watch) of every kind, image inspection, /metrics, /openapi.json. Not
 *   machine consoles: a console is the app's own output, where apps print configuration, stack
 *   traces and secrets they were given; a read-only token is meant for dashboards and auditors,
 *   and handing it to one must not hand over what the apps log. Not tunnels (they reach the apps
 *   themselves), not tokens.
 * - node: an agent. Reads every kind (not consoles, tunnels or tokens); creates and replaces its
 *   own Node object (not its cordon or drain, not another node's address); writes the status
 *   (addresses only at loopback or its Node's address) of, deletes, and records Events about
 *   Machines whose spec.node is its node, and opens the Secret values those Machines' env refers
 *   to (routes/secret-env.ts). Never a Machine's spec, never a Service.
 * - proxy: reads and watches Services, Machines and Nodes, reports load, opens tunnels. Nothing else.
 *
 * What a role may read of an object is narrower still for env values (redaction.ts).
 */
export const ROLE_SUMMARY: Record<Role, string> = {
  admin: "do everything",
  "read-only": "read and watch objects, inspect images and read /metrics, but not write anything, read consoles, open tunnels or manage tokens",
  node: "read and watch objects, register and update its own Node, and write the status of, delete, record events about and open the Secret env of Machines placed on its node, and attach Volumes to them",
  proxy: "read and watch Services, Machines and Nodes, report load (PUT /api/v1/services/NAME/load) and open tunnels",
};

/** A check that needs the body or the stored object: run once the request is parsed. */
type ObjectCheck = "own-node-create" | "own-node-replace" | "own-machine" | "own-machine-status" | "event-about-own" | "own-volume";

type Access = { allow: true } | { check: ObjectCheck } | { deny: true };

const ALLOW: Access = { allow: true };
const DENY: Access = { deny: true };

const RESOURCE = /^\/api\/v1\/(services|machines|nodes|images|events|secrets|volumes)(\/:name)?(\/status)?$/;

function access(principal: Principal, method: string, url: string, params: Record<string, unknown>): Access {
  const role = principal.role;
  if (role === "admin") return ALLOW;
  const route = `${method} ${url}`;
  if (route === "GET /openapi.json") return ALLOW; // the API's description, no data
  if (url.startsWith("/api/v1/tokens")) return DENY;
  const resource = RESOURCE.exec(url);
  if (role === "proxy") {
    // Nodes too: a proxy dials a machine only at its node's registered address (or loopback).
    if (method === "GET" && resource && (resource[1] === "services" || resource[1] === "machines" || resource[1] === "nodes") && !resource[3]) return ALLOW;
    return route === "PUT /api/v1/services/:name/load" || route === "GET /api/v1/machines/:name/tunnel/:port" ? ALLOW : DENY;
  }
  // read-only and node read alike.
  if (method === "GET" && (resource || url === "/api/v1/watch")) return ALLOW;
  if (role === "read-only") return route === "GET /metrics" || route === "GET /api/v1/images/:name/inspect" ? ALLOW : DENY;
  switch (route) {
    case "POST /api/v1/nodes":
      return { check: "own-node-create" };
    case "PUT /api/v1/nodes/:name":
      return params.name === principal.node ? { check: "own-node-replace" } : DENY;
    case "PUT /api/v1/nodes/:name/status":
      return params.name === principal.node ? ALLOW : DENY;
    case "PUT /api/v1/machines/:name/status":
      return { check: "own-machine-status" };
    case "POST /api/v1/machine-statuses":
      return ALLOW; // each entry is checked by the route (machineRefusal), so one refusal fails only itself
    case "DELETE /api/v1/machines/:name":
    case "GET /api/v1/machines/:name/secret-env":
      return { check: "own-machine" };
    case "POST /api/v1/events":
      return { check: "event-about-own" };
    case "PUT /api/v1/volumes/:name/status":
      return { check: "own-volume" };
    default:
      return DENY;
  }
}

/**
 * The route-level decision, made as soon as the token is known (before the body is read): throws
 * a 403 for a route the role may never use. Returns whether an object check must follow.
 */
export function authorizeRoute(principal: Principal, request: FastifyRequest): boolean {
  const url = request.routeOptions.url;
  if (url === undefined) return false; // no such route: the 404 handler answers
  const decision = access(principal, request.method, url, request.params as Record<string, unknown>);
  if ("deny" in decision) throw forbidden(principal, `${request.method} ${url}`);
  return "check" in decision;
}

/** The object-level decision for a node token's writes; throws a 403 naming the node. */
export async function authorizeObject(principal: Principal, request: FastifyRequest, store: Store): Promise<void> {
  const url = request.routeOptions.url;
  if (url === undefined) return;
  const decision = access(principal, request.method, url, request.params as Record<string, unknown>);
  if (!("check" in decision)) return;
  const node = principal.node;
  const what = `${request.method} ${url}`;
  if (decision.check === "own-node-create" || decision.check === "own-node-replace") {
    const body = request.body as { metadata?: { name?: unknown }; spec?: Partial<NodeSpec> } | undefined;
    if (decision.check === "own-node-create" && body?.metadata?.name !== node) throw forbidden(principal, what, `it may create only its own Node, ${node}, not ${String(body?.metadata?.name)}`);
    const problem = await nodeSpecRefusal(store, node, body?.spec);
    if (problem) throw forbidden(principal, what, problem);
    return;
  }
  if (decision.check === "own-machine" || decision.check === "own-machine-status") {
    const name = String((request.params as { name?: unknown }).name);
    const status = decision.check === "own-machine-status" ? ((request.body as { status?: Partial<MachineStatus> } | undefined)?.status ?? {}) : undefined;
    const refusal = await machineRefusal(principal, store, name, status);
    if (refusal) throw forbidden(principal, what, refusal);
    return;
  }
  if (decision.check === "own-volume") {
    // An agent attaches a volume on its own node to a machine placed there, and detaches only
    // what a machine of its node holds.
    const name = String((request.params as { name?: unknown }).name);
    const status = (request.body as { status?: VolumeStatus } | undefined)?.status ?? {};
    const stored = await store.get<Volume>("Volume", name);
    const onNode = async (machine: string | undefined): Promise<boolean> => machine === undefined || (await store.get<Machine>("Machine", machine))?.spec.node === node;
    if (status.node !== node) throw forbidden(principal, what, `it may record volumes only on its own node, ${node}`);
    if (!(await onNode(status.attachedTo))) throw forbidden(principal, what, `Machine ${status.attachedTo} is not placed on node ${node}`);
    const holder = stored?.status.attachedTo;
    if (holder !== undefined && holder !== status.attachedTo && (await store.get<Machine>("Machine", holder)) && !(await onNode(holder))) {
      throw forbidden(principal, what, `Volume ${name} is held by machine ${holder}, which is not on node ${node}`);
    }
    return;
  }
  const involved = (request.body as { spec?: Partial<EventSpec> } | undefined)?.spec?.involved;
  if (involved?.kind === "Node" && involved.name === node) return;
  if (involved?.kind === "Machine") {
    const machine = await store.get<Machine>("Machine", involved.name);
    if (machine?.spec.node === node) return;
  }
  throw forbidden(principal, what, `it may record events only about its own Node and the Machines placed on node ${node}`);
}

/**
 * Why a node token may not touch this Machine (write `status` to it, if given), or undefined if
 * it may: the machine must be placed on its node, and the addresses it publishes must be at that
 * node's registered address. A missing machine is not refused: that is the handler's 404 to give.
 * Admins are never refused. The single status route and the batch route (machine-statuses.ts) both ask.
 */
export async function machineRefusal(principal: Principal, store: Store, name: string, status: Partial<MachineStatus> | undefined): Promise<string | undefined> {
  if (principal.role === "admin") return undefined;
  const node = principal.node;
  const machine = await store.get<Machine>("Machine", name);
  if (!machine) return undefined;
  if (machine.spec.node !== node) return `Machine ${name} is placed on ${machine.spec.node ? `node ${machine.spec.node}` : "no node yet"}, not on ${node}`;
  const addresses = status?.addresses ?? [];
  if (addresses.length === 0) return undefined;
  const registered = node ? (await store.get<PithNode>("Node", node))?.spec.address : undefined;
  const foreign = addresses.find((a) => !isPublishable(a.url, registered));
  return foreign ? `a machine's addresses must be http://IP:PORT/ at node ${node}'s registered address (${registered ?? "none: loopback"}), not ${foreign.url}` : undefined;
}

/**
 * What a node token may not put in its own Node's spec: cordon and drain are the operator's, and
 * an address another node registered would let it point proxies at that node's forwards.
 */
async function nodeSpecRefusal(store: Store, node: string | undefined, spec: Partial<NodeSpec> | undefined): Promise<string | undefined> {
  const stored = node ? await store.get<PithNode>("Node", node) : undefined;
  if ((spec?.unschedulable ?? false) !== (stored?.spec.unschedulable ?? false) || (spec?.drain ?? false) !== (stored?.spec.drain ?? false)) {
    return "cordon and drain (spec.unschedulable, spec.drain) are changed by admins only (`pith cordon`, `pith uncordon`, `pith drain`)";
  }
  if (spec?.address === undefined) return undefined;
  const holder = (await store.list<PithNode>("Node")).items.find((n) => n.metadata.name !== node && n.spec.address === spec.address);
  return holder ? `address ${spec.address} is already registered by node ${holder.metadata.name}` : undefined;
}

/** A machine address a node may publish, as http://IP:PORT/: its registered address, or loopback if it has none. */
function isPublishable(url: string, registered: string | undefined): boolean {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    return false;
  }
  const host = parsed.hostname;
  const allowed = registered === undefined ? host.startsWith("127.") || host === "[::1]" : host === registered;
  return parsed.protocol === "http:" && !parsed.username && !parsed.password && allowed;
}

export function forbidden(principal: Principal, what: string, why?: string): ApiError {
  const who = principal.role === "node" ? `a node token (for node ${principal.node}, "${principal.name}")` : `a ${principal.role} token ("${principal.name}")`;
  return new ApiError(
    "Forbidden",
    `${who} may not ${what}${why ? `: ${why}` : ""}. A ${principal.role} token may ${ROLE_SUMMARY[principal.role]}`,
    "use a token whose role allows this; an admin creates one with `pith token create --role ROLE`",
  );
}
