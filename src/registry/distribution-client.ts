import type { Readable } from "node:stream";
import { systemError, userError } from "../shared/errors.ts";
import { LIMITS, OCI_MANIFEST_MEDIA_TYPE, sha256Digest } from "./artifact.ts";
import { discard, readBounded, send, type HttpRequest, type HttpResponse } from "./http-transport.ts";
import { basicAuthorization, credentialFor, parseChallenge, tokenRealm, type Credential } from "./registry-auth.ts";
import { printable } from "./printable.ts";
import { isLoopbackRegistry, type RegistryReference } from "./registry-reference.ts";

/**
 * A client of the OCI distribution API for one repository of one registry: blob HEAD, uploads
 * (POST then one PUT), manifest PUT and GET. It speaks to that registry alone: redirects and
 * token realms that lead elsewhere are refused. It answers 401s with basic auth or a bearer
 * token, as the registry's challenge asks.
 */
export interface DistributionClientOptions {
  /** What the client will do: pull only, or push too (the bearer token's scope). */
  access: "pull" | "push";
  credential?: Credential;
  /** Idle bound of each exchange (see http-transport). */
  idleMs?: number;
  env?: NodeJS.ProcessEnv;
}

const MAX_REDIRECTS = 5;
const TOKEN_ANSWER_BYTES = 64 * 1024;

export class DistributionClient {
  readonly base: URL;
  private authorization: string | undefined;
  private readonly credential: Credential | undefined;

  constructor(
    readonly ref: RegistryReference,
    private readonly options: DistributionClientOptions,
  ) {
    const env = options.env ?? process.env;
    const insecure = (env.PITH_INSECURE_REGISTRIES ?? "").split(",").map((s) => s.trim()).includes(ref.registry);
    this.base = new URL(`${isLoopbackRegistry(ref.registry) || insecure ? "http" : "https"}://${ref.registry}/`);
    this.credential = options.credential ?? credentialFor(ref.registry, env);
  }

  private get repoPath(): string {
    return `/v2/${this.ref.repository}`;
  }

  async blobExists(digest: string): Promise<boolean> {
    const res = await this.exchange({ method: "HEAD", url: this.url(`${this.repoPath}/blobs/${digest}`) });
    await discard(res);
    if (res.status === 200) return true;
    if (res.status === 404) return false;
    throw this.failure(res.status, `checking blob ${digest}`);
  }

  /** A monolithic upload: POST for a session, then one PUT with the whole blob and its digest. */
  async uploadBlob(digest: string, length: number, stream: () => Readable): Promise<void> {
    const started = await this.exchange({ method: "POST", url: this.url(`${this.repoPath}/blobs/uploads/`), body: Buffer.alloc(0) });
    await discard(started);
    if (started.status !== 202) throw this.failure(started.status, "starting an upload");
    const location = this.sameOrigin(started.headers.location, "the upload location");
    location.searchParams.set("digest", digest);
    const done = await this.exchange({ method: "PUT", url: location, headers: { "content-type": "application/octet-stream" }, body: { stream, length } });
    const text = await discard(done);
    if (done.status !== 201) throw this.failure(done.status, `uploading blob ${digest}`, text);
  }

  /** Puts a manifest under a tag or its digest; returns the digest the registry computed. */
  async putManifest(selector: string, bytes: Buffer): Promise<string> {
    const res = await this.exchange({ method: "PUT", url: this.url(`${this.repoPath}/manifests/${selector}`), headers: { "content-type": OCI_MANIFEST_MEDIA_TYPE }, body: bytes });
    const text = await discard(res);
    if (res.status !== 201) throw this.failure(res.status, `putting the manifest ${selector}`, text);
    const digest = sha256Digest(bytes);
    const answered = header(res, "docker-content-digest");
    if (answered !== undefined && answered !== digest) throw systemError("REGISTRY_DIGEST_MISMATCH", `the registry stored the manifest as ${answered}, but its bytes hash to ${digest}`);
    return digest;
  }

  /**
   * The manifest named by a tag or digest: at most LIMITS.manifestBytes, and its bytes must hash
   * to the digest asked for (or, for a tag, to the digest the registry says it has).
   */
  async getManifest(selector: string): Promise<{ bytes: Buffer; digest: string }> {
    const res = await this.exchange({ method: "GET", url: this.url(`${this.repoPath}/manifests/${selector}`), headers: { accept: OCI_MANIFEST_MEDIA_TYPE } });
    if (res.status === 404) {
      await discard(res);
      throw userError("IMAGE_NOT_IN_REGISTRY", `${this.ref.registry}/${this.ref.repository} has no manifest ${selector}`, "check the tag or digest (`pith push` prints what it pushed)");
    }
    if (res.status !== 200) throw this.failure(res.status, `getting the manifest ${selector}`, await discard(res));
    const bytes = await readBounded(res, LIMITS.manifestBytes, "the manifest").catch((e: Error) => Promise.reject(this.refused(e.message)));
    const digest = sha256Digest(bytes);
    const expected = selector.startsWith("sha256:") ? selector : header(res, "docker-content-digest");
    if (expected !== undefined && expected !== digest) throw this.refused(`the manifest it sent for ${selector} hashes to ${digest}, not ${expected}`);
    return { bytes, digest };
  }

  /** A blob's body, not read yet: the caller streams it and checks its digest and size. */
  async getBlob(digest: string): Promise<HttpResponse> {
    const res = await this.exchange({ method: "GET", url: this.url(`${this.repoPath}/blobs/${digest}`) });
    if (res.status === 404) {
      await discard(res);
      throw this.refused(`it has no blob ${digest}, which the manifest names`);
    }
    if (res.status !== 200) throw this.failure(res.status, `getting blob ${digest}`, await discard(res));
    return res;
  }

  /** A registry that sent something Pith will not accept: the error names it and nothing is kept. */
  refused(why: string): Error {
    return systemError("REGISTRY_REFUSED", `refused what ${this.ref.registry} sent: ${why}`, "nothing was stored; check the registry, or push the image again");
  }

  private url(path: string): URL {
    return new URL(path, this.base);
  }

  /** A URL a registry gave us (an upload location, a redirect), only if it is the registry's own. */
  private sameOrigin(location: string | string[] | undefined, what: string): URL {
    if (typeof location !== "string" || location === "") throw this.refused(`${what} is missing`);
    let url: URL;
    try {
      url = new URL(location, this.base);
    } catch {
      throw this.refused(`${what} is not a URL`);
    }
    if (url.origin !== this.base.origin) throw this.refused(`${what} leads to ${url.origin}; Pith contacts only the registry the reference names (${this.base.origin})`);
    return url;
  }

  /** Sends, answering one auth challenge and following same-origin redirects of GET and HEAD. */
  private async exchange(req: Omit<HttpRequest, "idleMs">): Promise<HttpResponse> {
    let url = req.url;
    let challenged = false;
    for (let hop = 0; ; hop++) {
      const headers = { ...req.headers, ...(this.authorization ? { authorization: this.authorization } : {}) };
      let res: HttpResponse;
      try {
        res = await send({ ...req, url, headers, ...(this.options.idleMs ? { idleMs: this.options.idleMs } : {}) });
      } catch (e) {
        throw systemError("REGISTRY_UNREACHABLE", `cannot reach ${this.ref.registry}: ${(e as Error).message}`, `is the registry running at ${this.base.origin}?`);
      }
      if (res.status === 401 && !challenged) {
        challenged = true;
        const challenge = parseChallenge(header(res, "www-authenticate"));
        await discard(res);
        await this.authenticate(challenge);
        continue;
      }
      const redirect = [301, 302, 303, 307, 308].includes(res.status) && (req.method === "GET" || req.method === "HEAD");
      if (redirect && hop < MAX_REDIRECTS) {
        await discard(res);
        url = this.sameOrigin(res.headers.location, "a redirect");
        continue;
      }
      return res;
    }
  }

  private async authenticate(challenge: ReturnType<typeof parseChallenge>): Promise<void> {
    const credential = this.credential;
    if (challenge?.scheme === "basic") {
      if (!credential || !("username" in credential)) throw this.unauthorized("it asks for a username and password");
      this.authorization = basicAuthorization(credential);
      return;
    }
    if (challenge?.scheme !== "bearer") throw this.unauthorized("it asks for an authentication Pith does not speak");
    if (credential && "token" in credential) {
      this.authorization = `Bearer ${credential.token}`;
      return;
    }
    const realm = tokenRealm(challenge, this.base);
    if (challenge.params.service) realm.searchParams.set("service", challenge.params.service);
    realm.searchParams.set("scope", `repository:${this.ref.repository}:${this.options.access === "push" ? "pull,push" : "pull"}`);
    let res: HttpResponse;
    try {
      res = await send({ method: "GET", url: realm, headers: credential ? { authorization: basicAuthorization(credential) } : {}, ...(this.options.idleMs ? { idleMs: this.options.idleMs } : {}) });
    } catch (e) {
      throw systemError("REGISTRY_UNREACHABLE", `cannot reach ${this.ref.registry}'s token endpoint: ${(e as Error).message}`);
    }
    if (res.status !== 200) {
      await discard(res);
      throw this.unauthorized(`its token endpoint answered ${res.status}`);
    }
    let answer: { token?: unknown; access_token?: unknown };
    try {
      answer = JSON.parse((await readBounded(res, TOKEN_ANSWER_BYTES, "the token answer")).toString("utf8")) as typeof answer;
    } catch (e) {
      throw this.refused(`its token answer is unreadable (${(e as Error).message})`);
    }
    const token = typeof answer.token === "string" ? answer.token : typeof answer.access_token === "string" ? answer.access_token : undefined;
    if (!token || /[\r\n]/.test(token)) throw this.refused("its token answer holds no usable token");
    this.authorization = `Bearer ${token}`;
  }

  private unauthorized(why: string): Error {
    return userError(
      "REGISTRY_UNAUTHORIZED",
      `${this.ref.registry} refused access to ${this.ref.repository}: ${why}`,
      `put credentials for "${this.ref.registry}" in $PITH_HOME/registry-auth.json (mode 0600), PITH_REGISTRY_AUTH_FILE or PITH_REGISTRY_AUTH; see README`,
    );
  }

  private failure(status: number, doing: string, body = ""): Error {
    if (status === 401 || status === 403) return this.unauthorized(`${doing} got ${status}`);
    const detail = printable(body.replace(/\s+/g, " ").trim(), 300);
    return systemError("REGISTRY_ERROR", `${this.ref.registry} answered ${status} when ${doing}${detail ? `: ${detail}` : ""}`);
  }
}

function header(res: HttpResponse, name: string): string | undefined {
  const value = res.headers[name];
  return typeof value === "string" ? value : undefined;
}
