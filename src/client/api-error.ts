import { PithError } from "../shared/errors.ts";

/** One field-level problem the API reported, e.g. `{ path: "spec.replicas", message: "must be ≥ 0" }`. */
export interface ApiErrorDetail {
  path: string;
  message: string;
}

/** The API's error body: `{ error: { code, message, hint?, details? } }`. */
export interface ApiErrorBody {
  error: { code: string; message: string; hint?: string; details?: ApiErrorDetail[] };
}

/**
 * A failed call to the control plane's API. `status` is the HTTP status, or 0 when the server
 * could not be reached at all; `code` is the API's code (NotFound, Conflict, AlreadyExists,
 * Invalid, Unauthorized, Gone, ...) or Unreachable / Timeout for transport failures. The message
 * includes every detail's path, so printing it is enough for a person to fix the input.
 */
export class ApiError extends PithError {
  readonly status: number;
  readonly details: readonly ApiErrorDetail[];
  /** The server's message without the details appended. */
  readonly apiMessage: string;

  constructor(status: number, code: string, message: string, options: { hint?: string; details?: ApiErrorDetail[]; cause?: unknown } = {}) {
    const details = options.details ?? [];
    const full = details.length ? `${message}\n${details.map((d) => `  ${fieldPath(d.path)}: ${d.message}`).join("\n")}` : message;
    // A refused token is fixed on the client's side: say how to pass one, whatever the server suggests.
    const hint = status === 401 ? TOKEN_HINT : (options.hint ?? defaultHint(status));
    super(code, status === 0 || status >= 500 ? "system" : "user", full, hint, { cause: options.cause });
    this.name = "ApiError";
    this.status = status;
    this.details = details;
    this.apiMessage = message;
  }
}

export const isApiError = (e: unknown, status?: number): e is ApiError =>
  e instanceof ApiError && (status === undefined || e.status === status);

/**
 * A failure that says the API is not there right now (no connection, no answer in time, a 5xx
 * while a server restarts), rather than that the request is wrong: worth trying again. Not the
 * client's own BadResponse, an answer that is not the API's (--server points elsewhere).
 */
export const isApiUnavailable = (e: unknown): e is ApiError => isApiError(e) && e.kind === "system" && e.code !== "BadResponse";

/** A detail's JSON pointer as a person writes the field: "/spec/hosts/0" is spec.hosts[0]. */
export function fieldPath(pointer: string): string {
  if (!pointer.startsWith("/")) return pointer || "(the object)";
  const segments = pointer.slice(1).split("/").map((s) => s.replace(/~1/g, "/").replace(/~0/g, "~"));
  return segments.reduce((path, s) => (/^\d+$/.test(s) ? `${path}[${s}]` : path ? `${path}.${s}` : s), "") || "(the object)";
}

const UNREACHABLE_HINT = "start it with `pith up`, or set --server / PITH_SERVER";
const TOKEN_HINT =
  "use the admin token the control plane wrote to $PITH_HOME/token on its host, or one from `pith token create`: pass --token-file FILE, set PITH_TOKEN, or put it in $PITH_HOME/config.json";

function defaultHint(status: number): string | undefined {
  if (status === 401 || status === 403) return TOKEN_HINT;
  if (status === 410) return "the watch fell behind what the server keeps: list again and watch from there";
  if (status >= 500) return "the control plane failed: see its log";
  return undefined;
}

/** Turns a non-2xx response into an ApiError, using the API's error body when there is one. */
export async function apiErrorFromResponse(response: Response, what: string): Promise<ApiError> {
  return apiErrorFromAnswer({ status: response.status, statusText: response.statusText, text: await response.text().catch(() => "") }, what);
}

/** The same, from an answer already read whole. */
export function apiErrorFromAnswer(answer: { status: number; statusText: string; text: string }, what: string): ApiError {
  const { status, statusText, text } = answer;
  const body = parseErrorBody(text);
  if (body) {
    const { code, message, hint, details } = body.error;
    return new ApiError(status, code, message, { ...(hint ? { hint } : {}), ...(details ? { details } : {}) });
  }
  const code = status === 401 ? "Unauthorized" : status === 404 ? "NotFound" : `HTTP${status}`;
  const snippet = text.trim().slice(0, 200);
  const message = status === 401
    ? `the control plane refused the token (${what})`
    : `${what}: HTTP ${status} ${statusText}${snippet ? `: ${snippet}` : ""}`;
  return new ApiError(status, code, message);
}

function parseErrorBody(text: string): ApiErrorBody | undefined {
  try {
    const value = JSON.parse(text) as Partial<ApiErrorBody> | null;
    const error = value?.error;
    if (error && typeof error.code === "string" && typeof error.message === "string") return value as ApiErrorBody;
  } catch {
    // not JSON: the caller reports the raw text
  }
  return undefined;
}

/**
 * Turns a fetch failure (undici's "fetch failed" TypeError wrapping a socket error, or a timeout)
 * into an ApiError that says which server could not be reached and why.
 */
export function apiErrorFromNetwork(error: unknown, server: string): ApiError {
  const code = networkErrorCode(error);
  const at = `the Pith control plane at ${server}`;
  const options = { hint: UNREACHABLE_HINT, cause: error };
  switch (code) {
    case "ECONNREFUSED":
      return new ApiError(0, "Unreachable", `cannot reach ${at}: connection refused`, options);
    case "ENOTFOUND":
    case "EAI_AGAIN":
      return new ApiError(0, "Unreachable", `cannot reach ${at}: host ${hostOf(server)} not found`, { ...options, hint: "check the host name in --server / PITH_SERVER" });
    case "TimeoutError":
    case "UND_ERR_CONNECT_TIMEOUT":
    case "UND_ERR_HEADERS_TIMEOUT":
    case "ETIMEDOUT":
      return new ApiError(0, "Timeout", `${at} did not answer in time`, { ...options, hint: "check that it is running and reachable from here (firewall, --server)" });
    default:
      return new ApiError(0, "Unreachable", `cannot reach ${at}: ${describeNetworkError(error, code)}`, options);
  }
}

/** The most specific error code in a fetch error's cause chain (AggregateError: its first error). */
export function networkErrorCode(error: unknown): string | undefined {
  for (let e: unknown = error, depth = 0; e && typeof e === "object" && depth < 5; depth++) {
    const candidate = e as { code?: unknown; name?: unknown; cause?: unknown; errors?: unknown };
    if (candidate.name === "TimeoutError") return "TimeoutError";
    if (typeof candidate.code === "string" && candidate.code !== "ERR_INVALID_STATE") return candidate.code;
    e = candidate.cause ?? (Array.isArray(candidate.errors) ? candidate.errors[0] : undefined);
  }
  return undefined;
}

function describeNetworkError(error: unknown, code: string | undefined): string {
  const cause = (error as { cause?: { message?: unknown } } | undefined)?.cause;
  const message = typeof cause?.message === "string" ? cause.message : error instanceof Error ? error.message : String(error);
  return code && !message.includes(code) ? `${message} (${code})` : message;
}

function hostOf(server: string): string {
  try {
    return new URL(server).hostname;
  } catch {
    return server;
  }
}
