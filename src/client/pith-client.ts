import type { Machine, MachineStatus, Service, PithEvent } from "../model/kinds.ts";
import { PLURALS, type Kind } from "../model/resource.ts";
import type { Role, TokenRecord } from "../model/token.ts";
import { userError } from "../shared/errors.ts";
import { ApiError, type ApiErrorDetail, apiErrorFromAnswer, apiErrorFromNetwork, apiErrorFromResponse, isApiError, networkErrorCode } from "./api-error.ts";
import { textChunks } from "./body-stream.ts";
import { JsonExchange } from "./json-exchange.ts";
import type { InputOf, ResourceList, ResourceOf, StatusOf } from "./types.ts";
import { runWatch, type WatchHandler, type WatchOptions } from "./watch.ts";

export interface PithClientOptions {
  /** The control plane's base URL, e.g. http://127.0.0.1:7070. */
  server: string;
  /** Sent as `Authorization: Bearer <token>`. */
  token: string;
  /** Time limit for each non-streaming request; default 30 s. */
  timeoutMs?: number;
}

interface RequestOptions {
  body?: unknown;
  signal?: AbortSignal;
  /** A long-lived response (watch, console follow): no time limit. */
  stream?: boolean;
}

/**
 * A typed client for the control plane's HTTP API (/api/v1), shared by the CLI, the node agent
 * and the proxy. Every failure is an ApiError (a PithError) whose message and hint say what to
 * do; a missing object is `undefined` from get() and an ApiError with status 404 elsewhere.
 */
/** How long a short request may take when the client is not told otherwise. */
export const DEFAULT_REQUEST_TIMEOUT_MS = 30_000;

export class PithClient {
  readonly server: string;
  readonly #token: string;
  readonly #timeoutMs: number;
  readonly #exchange: JsonExchange;

  constructor(options: PithClientOptions) {
    this.server = normaliseServer(options.server);
    this.#token = options.token;
    this.#timeoutMs = options.timeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS;
    this.#exchange = new JsonExchange(this.server);
  }

  /**
   * The Secret values a machine's env refers to (`GET /api/v1/machines/NAME/secret-env`): for
   * the agent of the machine's node, which passes them to the hypervisor and nowhere else.
   */
  secretEnv(machine: string): Promise<{ env: Record<string, string>; hashes: Record<string, string> }> {
    return this.#json("GET", `${member("Machine", machine)}/secret-env`);
  }

  /** `POST /api/v1/services/NAME/rollout/restart|undo`: a new template (restart) or the previous one (undo, or `toRevision`). */
  rollout(service: string, action: "restart" | "undo", options: { toRevision?: number } = {}): Promise<Service> {
    return this.#json("POST", `${member("Service", service)}/rollout/${action}`, { body: options });
  }

  /** `GET /healthz` (no token needed): the server's answer; throws ApiError when unreachable or unhealthy. */
  async healthz(): Promise<Record<string, unknown>> {
    const response = await this.#fetch("GET", "/healthz", {}, false);
    const text = await this.#text(response);
    try {
      const value = JSON.parse(text) as unknown;
      return value && typeof value === "object" && !Array.isArray(value) ? (value as Record<string, unknown>) : { status: value };
    } catch {
      return { status: text.trim() };
    }
  }

  /** All objects of a kind, optionally only those carrying every given label. */
  list<K extends Kind>(kind: K, options: { labels?: Record<string, string>; signal?: AbortSignal } = {}): Promise<ResourceList<ResourceOf<K>>> {
    const selector = options.labels && Object.keys(options.labels).length ? `?labelSelector=${encodeURIComponent(labelSelector(options.labels))}` : "";
    return this.#json("GET", `${collection(kind)}${selector}`, { signal: options.signal });
  }

  /** One object, or undefined if there is none by that name. */
  async get<K extends Kind>(kind: K, name: string, options: { signal?: AbortSignal } = {}): Promise<ResourceOf<K> | undefined> {
    try {
      return await this.#json<ResourceOf<K>>("GET", member(kind, name), { signal: options.signal });
    } catch (e) {
      if (isApiError(e, 404)) return undefined;
      throw e;
    }
  }

  /** Creates an object. An identical existing object is returned as is; a different one is ApiError 409 AlreadyExists. */
  create<K extends Kind>(input: InputOf<K>): Promise<ResourceOf<K>> {
    return this.#json("POST", collection(input.kind), { body: input });
  }

  /**
   * Replaces spec and labels (and status, if given; omitted keeps the stored one). With
   * metadata.resourceVersion set, fails with ApiError 409 Conflict if the object changed since.
   */
  update<K extends Kind>(input: InputOf<K>): Promise<ResourceOf<K>> {
    return this.#json("PUT", member(input.kind, input.metadata.name), { body: input });
  }

  /** Replaces only status, optionally only if the object is still at `resourceVersion`. */
  updateStatus<K extends Kind>(kind: K, name: string, status: StatusOf<K>, resourceVersion?: string): Promise<ResourceOf<K>> {
    const body = resourceVersion === undefined ? { status } : { metadata: { resourceVersion }, status };
    return this.#json("PUT", `${member(kind, name)}/status`, { body });
  }

  /**
   * Several Machines' statuses in one request (`POST /api/v1/machine-statuses`), each written or
   * refused on its own: the answer has, in each entry's position, the written Machine or the
   * ApiError `updateStatus` would have thrown for it. A failure of the whole request throws.
   */
  async updateMachineStatuses(entries: readonly { name: string; status: MachineStatus; resourceVersion?: string }[]): Promise<(Machine | ApiError)[]> {
    const items = entries.map(({ name, status, resourceVersion }) => (resourceVersion === undefined ? { name, status } : { name, metadata: { resourceVersion }, status }));
    const answer = await this.#json<{ items?: unknown }>("POST", "/api/v1/machine-statuses", { body: { items } });
    const answers = Array.isArray(answer.items) ? (answer.items as { object?: Machine; status?: number; error?: { code?: string; message?: string; hint?: string; details?: ApiErrorDetail[] } }[]) : [];
    if (answers.length !== entries.length) {
      throw new ApiError(502, "BadResponse", `POST /api/v1/machine-statuses: ${answers.length} answers for ${entries.length} entries`, { hint: "check that --server / PITH_SERVER points at the Pith control plane" });
    }
    return answers.map((a, i) => {
      if (a?.object && typeof a.object === "object") return a.object;
      const what = `PUT ${member("Machine", entries[i]!.name)}/status`;
      return new ApiError(typeof a?.status === "number" ? a.status : 502, a?.error?.code ?? "BadResponse", a?.error?.message ?? `${what}: no answer for this entry`, {
        ...(a?.error?.hint ? { hint: a.error.hint } : {}),
        ...(Array.isArray(a?.error?.details) ? { details: a.error.details } : {}),
      });
    });
  }

  /** Deletes an object; ApiError 404 if there is none. */
  async delete<K extends Kind>(kind: K, name: string): Promise<ResourceOf<K> | undefined> {
    const response = await this.#fetch("DELETE", member(kind, name), {});
    const text = await this.#text(response);
    let value: { kind?: unknown } | undefined;
    try {
      value = JSON.parse(text) as { kind?: unknown };
    } catch {
      value = undefined; // a body-less 200/204 is a successful delete too
    }
    return value?.kind === kind ? (value as ResourceOf<K>) : undefined;
  }

  /** Sets a service's replica count. */
  scale(service: string, replicas: number): Promise<Service> {
    return this.#json("POST", `${member("Service", service)}/scale`, { body: { replicas } });
  }

  /** A proxy's load report for the autoscaler (requests in flight, requests held waiting). */
  async reportLoad(service: string, load: { inFlight: number; waiting: number }): Promise<void> {
    const response = await this.#fetch("PUT", `${member("Service", service)}/load`, { body: load });
    await this.#text(response);
  }

  /** Creates an API token (admin only); the answer's `secret` is the token, shown this once. */
  createToken(options: { role: Role; node?: string; name?: string }): Promise<{ token: TokenRecord; secret: string }> {
    return this.#json("POST", "/api/v1/tokens", { body: options });
  }

  /** Every API token but the bootstrap admin one, without secrets (admin only). */
  async listTokens(): Promise<TokenRecord[]> {
    return (await this.#json<{ items: TokenRecord[] }>("GET", "/api/v1/tokens")).items;
  }

  /** Revokes a token by id or name (admin only); ApiError 404 if there is none. */
  revokeToken(idOrName: string): Promise<TokenRecord> {
    return this.#json("DELETE", `/api/v1/tokens/${encodeURIComponent(idOrName)}`);
  }

  /** Events about one object (e.g. events("Service", "web")), oldest first. */
  async events(kind: Kind, name: string): Promise<PithEvent[]> {
    const list = await this.#json<ResourceList<PithEvent>>("GET", `${collection("Event")}?involved=${encodeURIComponent(`${kind}/${name}`)}`);
    return [...list.items].sort((a, b) => (a.spec.at ?? "").localeCompare(b.spec.at ?? ""));
  }

  /**
   * A machine's console output as text chunks. With `follow`, keeps streaming new output until
   * `signal` aborts (the iteration then just ends) or the server closes the stream.
   */
  async *console(name: string, options: { follow?: boolean; signal?: AbortSignal } = {}): AsyncGenerator<string> {
    const path = `${member("Machine", name)}/console${options.follow ? "?follow=true" : ""}`;
    let response: Response;
    try {
      response = await this.#fetch("GET", path, { signal: options.signal, stream: true });
    } catch (e) {
      if (options.signal?.aborted) return;
      throw e;
    }
    if (!response.body) return;
    try {
      yield* textChunks(response.body);
    } catch (e) {
      if (options.signal?.aborted) return;
      throw apiErrorFromNetwork(e, this.server);
    }
  }

  /**
   * Streams changes to objects of `kind` to `onEvent` (awaited, one at a time, in revision order)
   * until `options.signal` aborts, when the returned promise resolves. Survives disconnects:
   * it reconnects with back-off from the last revision seen (events and BOOKMARKs), never
   * delivering an event twice. If the server no longer has that history (410 Gone) it lists the
   * kind again and calls `options.onRelist(items, resourceVersion)` with the full current set,
   * then continues from there; see WatchOptions. Rejects if a callback throws, or on errors a
   * retry cannot fix (401, 400, 404; 410 without onRelist).
   */
  watch<K extends Kind>(kind: K, options: WatchOptions<ResourceOf<K>>, onEvent: WatchHandler<ResourceOf<K>>): Promise<void> {
    const base = collection(kind);
    return runWatch<ResourceOf<K>>(
      {
        server: this.server,
        open: async (resourceVersion, signal) => {
          const response = await this.#fetch("GET", `${base}?watch=true&resourceVersion=${encodeURIComponent(resourceVersion)}`, { signal, stream: true });
          if (!response.body) throw new ApiError(500, "EmptyWatch", "the watch response has no body");
          return response.body;
        },
        list: async (signal) => {
          const list = await this.list(kind, { ...(options.labels ? { labels: options.labels } : {}), signal });
          return { items: list.items, resourceVersion: list.metadata.resourceVersion };
        },
      },
      options,
      onEvent,
    );
  }

  async #json<T>(method: string, path: string, options: RequestOptions = {}): Promise<T> {
    const text = await this.#send(method, path, options);
    try {
      return JSON.parse(text) as T;
    } catch {
      throw new ApiError(502, "BadResponse", `${method} ${path}: the server answered with something that is not JSON: ${text.slice(0, 120)}`, {
        hint: "check that --server / PITH_SERVER points at the Pith control plane",
      });
    }
  }

  /** A response's body; a connection cut while reading it is reported like any network failure. */
  async #text(response: Response, signal?: AbortSignal): Promise<string> {
    try {
      return await response.text();
    } catch (e) {
      if (signal?.aborted) throw e;
      throw apiErrorFromNetwork(e, this.server);
    }
  }

  /**
   * One short exchange (not a stream), the answer's text; non-2xx answers and transport failures
   * become ApiErrors, as from #fetch.
   */
  async #send(method: string, path: string, options: RequestOptions): Promise<string> {
    const headers: Record<string, string> = { accept: "application/json", authorization: `Bearer ${this.#token}` };
    const body = options.body === undefined ? undefined : JSON.stringify(options.body);
    if (body !== undefined) headers["content-type"] = "application/json";
    const timeout = AbortSignal.timeout(this.#timeoutMs);
    const signal = options.signal ? AbortSignal.any([options.signal, timeout]) : timeout;
    for (let attempt = 1; ; attempt++) {
      let answer;
      try {
        answer = await this.#exchange.send(method, path, headers, body, signal);
      } catch (e) {
        if (options.signal?.aborted) throw e; // the caller cancelled: not a network problem
        // As in #fetch: a pooled connection the server closed meanwhile fails the first request.
        if (attempt === 1 && STALE_CONNECTION.has(networkErrorCode(e) ?? "")) continue;
        throw apiErrorFromNetwork(e, this.server);
      }
      if (answer.status >= 200 && answer.status < 300) return answer.text;
      throw apiErrorFromAnswer(answer, `${method} ${path}`);
    }
  }

  /** One HTTP exchange; non-2xx answers and transport failures become ApiErrors. */
  async #fetch(method: string, path: string, options: RequestOptions, authorised = true): Promise<Response> {
    const headers: Record<string, string> = { accept: "application/json" };
    if (authorised) headers.authorization = `Bearer ${this.#token}`;
    if (options.body !== undefined) headers["content-type"] = "application/json";
    const signals = [options.signal, options.stream ? undefined : AbortSignal.timeout(this.#timeoutMs)].filter((s): s is AbortSignal => s !== undefined);
    const init: RequestInit = {
      method,
      headers,
      ...(options.body !== undefined ? { body: JSON.stringify(options.body) } : {}),
      ...(signals.length ? { signal: signals.length === 1 ? signals[0] : AbortSignal.any(signals) } : {}),
    };
    let response: Response | undefined;
    for (let attempt = 1; !response; attempt++) {
      try {
        response = await fetch(`${this.server}${path}`, init);
      } catch (e) {
        if (options.signal?.aborted) throw e; // the caller cancelled: not a network problem
        // A pooled keep-alive connection the server closed meanwhile (it restarted, or timed the
        // connection out) fails the first request sent on it: one retry opens a fresh connection.
        // Every call here is safe to repeat: creates and scales are idempotent, updates carry
        // their resourceVersion, and a repeated delete at worst reports the object gone.
        if (attempt === 1 && STALE_CONNECTION.has(networkErrorCode(e) ?? "")) continue;
        throw apiErrorFromNetwork(e, this.server);
      }
    }
    if (!response.ok) throw await apiErrorFromResponse(response, `${method} ${path}`);
    return response;
  }
}

const STALE_CONNECTION = new Set(["UND_ERR_SOCKET", "ECONNRESET", "EPIPE"]);

const collection = (kind: Kind): string => `/api/v1/${PLURALS[kind]}`;
const member = (kind: Kind, name: string): string => `${collection(kind)}/${encodeURIComponent(name)}`;
const labelSelector = (labels: Record<string, string>): string => Object.entries(labels).map(([k, v]) => `${k}=${v}`).join(",");

function normaliseServer(server: string): string {
  let url: URL;
  try {
    url = new URL(server);
  } catch {
    throw userError("BAD_SERVER", `server ${JSON.stringify(server)} is not a URL`, "use e.g. http://127.0.0.1:7070 (--server or PITH_SERVER)");
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") {
    throw userError("BAD_SERVER", `server ${server} is not an http(s) URL`, "use e.g. http://127.0.0.1:7070 (--server or PITH_SERVER)");
  }
  return url.toString().replace(/\/+$/, "");
}
