/**
 * Talking to the control plane from the browser. The token lives in sessionStorage (gone when the
 * tab closes) and goes out as `Authorization: Bearer` on every fetch; only an EventSource, which
 * cannot set headers, carries it as `?token=`.
 */
const TOKEN_KEY = "pith.token";

export const getToken = (): string | undefined => sessionStorage.getItem(TOKEN_KEY) ?? undefined;
export const setToken = (token: string): void => sessionStorage.setItem(TOKEN_KEY, token);
export const clearToken = (): void => sessionStorage.removeItem(TOKEN_KEY);

export interface ErrorDetail {
  path: string;
  message: string;
}

/** An error response of the API: `{error: {code, message, hint?, details?}}`. */
export class ApiRequestError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly hint?: string,
    readonly details: ErrorDetail[] = [],
  ) {
    super(message);
    this.name = "ApiRequestError";
  }
}

type Listener = (reason: string) => void;
const unauthorizedListeners = new Set<Listener>();

/** Called when the server rejects the token: the app signs out and says why. */
export function onUnauthorized(listener: Listener): () => void {
  unauthorizedListeners.add(listener);
  return () => unauthorizedListeners.delete(listener);
}

export function signOut(reason = ""): void {
  clearToken();
  for (const listener of unauthorizedListeners) listener(reason);
}

export function authHeaders(token = getToken()): Record<string, string> {
  return token ? { authorization: `Bearer ${token}` } : {};
}

/** fetch with the token; a non-2xx answer becomes an ApiRequestError (401 also signs out). */
export async function apiFetch(path: string, init: RequestInit = {}, token = getToken()): Promise<Response> {
  const response = await fetch(path, { ...init, headers: { accept: "application/json", ...authHeaders(token), ...(init.headers as Record<string, string> | undefined) } });
  if (response.ok) return response;
  const error = await errorOf(response);
  if (response.status === 401 && token === getToken()) signOut(error.message);
  throw error;
}

async function errorOf(response: Response): Promise<ApiRequestError> {
  const text = await response.text().catch(() => "");
  try {
    const body = JSON.parse(text) as { error?: { code?: string; message?: string; hint?: string; details?: ErrorDetail[] } };
    if (body.error) {
      return new ApiRequestError(response.status, body.error.code ?? "Error", body.error.message ?? response.statusText, body.error.hint, body.error.details ?? []);
    }
  } catch {
    // not JSON: use the text
  }
  return new ApiRequestError(response.status, "Error", text.trim() || `${response.status} ${response.statusText}`);
}

export async function api<T>(method: string, path: string, body?: unknown): Promise<T> {
  const response = await apiFetch(path, {
    method,
    ...(body === undefined ? {} : { body: JSON.stringify(body), headers: { "content-type": "application/json" } }),
  });
  return (await response.json()) as T;
}

/** Checks a token before keeping it: true if the API accepts it. */
export async function tokenWorks(token: string): Promise<boolean> {
  // /healthz is open, so ask for something that needs the token (and is small).
  const response = await fetch("/api/v1/nodes", { headers: { accept: "application/json", ...authHeaders(token) } });
  if (response.status === 401) return false;
  if (!response.ok) throw await errorOf(response);
  return true;
}

/** A short, human message for any error. */
export function describeError(error: unknown): string {
  if (error instanceof ApiRequestError) return error.hint ? `${error.message}. ${error.hint}` : error.message;
  if (error instanceof Error) return error.message;
  return String(error);
}
