import { Etcd3, type IKeyValue, type IRangeRequest, type IRangeResponse, type ITxnRequest, type ITxnResponse } from "etcd3";
import { StoreError } from "../store.ts";
import { etcdFailure } from "./etcd-failure.ts";

/** How to reach an etcd cluster: `pith server --store etcd://...` and its --etcd-* flags. */
export interface EtcdConnectionOptions {
  /** Client endpoints as host:port, one per member (at least one). */
  endpoints: string[];
  /** TLS: the CA that signed the members' certificates, and this client's own certificate and key (mutual TLS). */
  tls?: { ca: Buffer; cert?: Buffer; key?: Buffer };
  /** etcd's role-based auth. */
  auth?: { username: string; password: string };
  /** Every unary request (read, write, lease grant) is answered or fails within this (default 5000 ms). */
  requestTimeoutMs?: number;
}

export const DEFAULT_REQUEST_TIMEOUT_MS = 5000;

/**
 * One client for an etcd cluster, with every request bounded: without a quorum, etcd neither
 * answers nor refuses, so an unbounded request would hang its caller forever. A request that
 * fails for want of the cluster is a StoreError "Unavailable" saying so.
 */
export class EtcdConnection {
  readonly client: Etcd3;
  readonly timeoutMs: number;
  readonly endpoints: string[];

  constructor(options: EtcdConnectionOptions) {
    if (options.endpoints.length === 0) throw new StoreError("Invalid", "etcd needs at least one endpoint (host:port)");
    this.endpoints = options.endpoints;
    this.timeoutMs = options.requestTimeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS;
    const scheme = options.tls ? "https" : "http";
    this.client = new Etcd3({
      hosts: options.endpoints.map((endpoint) => `${scheme}://${endpoint}`),
      ...(options.tls && {
        credentials: {
          rootCertificate: options.tls.ca,
          ...(options.tls.key && { privateKey: options.tls.key }),
          ...(options.tls.cert && { certChain: options.tls.cert }),
        },
      }),
      ...(options.auth && { auth: { ...options.auth, callOptions: () => ({ deadline: Date.now() + this.timeoutMs / 2 }) } }),
      dialTimeout: this.timeoutMs,
      // Each attempt gets half the time: one stuck on a dead member (gRPC waits for its connection
      // until the deadline) leaves the client's retry on another member time to succeed.
      defaultCallOptions: (context) => (context.isStream ? {} : { deadline: Date.now() + this.timeoutMs / 2 }),
    });
  }

  /** A range read, bounded. */
  range(request: IRangeRequest): Promise<IRangeResponse> {
    return this.bounded("read", () => this.client.kv.range(request));
  }

  /** A transaction, bounded: it committed entirely or not at all (a timeout may leave which unknown). */
  txn(request: ITxnRequest): Promise<ITxnResponse> {
    return this.bounded("write", () => this.client.kv.txn(request));
  }

  /**
   * Runs one request (with the client's retries on other members) within the timeout: each gRPC
   * attempt has its own deadline, and this bounds the whole, authentication and retries included.
   */
  async bounded<T>(what: string, call: (deadline: Date) => Promise<T>): Promise<T> {
    const deadline = new Date(Date.now() + this.timeoutMs);
    let timer: NodeJS.Timeout | undefined;
    const overall = new Promise<never>((_resolve, reject) => {
      timer = setTimeout(() => reject(new Error(`no answer within ${this.timeoutMs} ms`)), this.timeoutMs);
    });
    const attempt = call(deadline);
    attempt.catch(() => {}); // if the race is lost, its later failure is nobody's business
    try {
      return await Promise.race([attempt, overall]);
    } catch (error) {
      throw this.unavailable(what, error);
    } finally {
      clearTimeout(timer);
    }
  }

  /** A StoreError for a failed request: StoreErrors pass, anything else is the cluster's refusal or absence. */
  unavailable(what: string, error: unknown): StoreError {
    if (error instanceof StoreError) return error;
    const reason = error instanceof Error ? error.message : String(error);
    const { hint, outcome } = etcdFailure(what, reason);
    return new StoreError("Unavailable", `etcd (${this.endpoints.join(",")}) could not ${what}: ${reason}. ${hint}${outcome}`);
  }

  close(): void {
    this.client.close();
  }
}

/** etcd's revisions are int64 in decimal strings; Pith's resourceVersions are the same strings. */
export const revisionOf = (kv: Pick<IKeyValue, "mod_revision">): string => String(kv.mod_revision);

/** The key range holding every key with this prefix: [prefix, prefix with its last byte + 1). */
export function prefixRange(prefix: string): { key: Buffer; range_end: Buffer } {
  const key = Buffer.from(prefix);
  const end = Buffer.from(key);
  for (let i = end.length - 1; i >= 0; i--) {
    if (end[i]! < 0xff) {
      end[i]!++;
      return { key, range_end: end.subarray(0, i + 1) };
    }
  }
  return { key, range_end: Buffer.from([0]) };
}
