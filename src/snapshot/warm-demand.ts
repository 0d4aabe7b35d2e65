import type { PithClient } from "../client/index.ts";
import { apiSource } from "../client/api-source.ts";
import { Informer } from "../client/informer.ts";
import type { MachineSpec } from "../hypervisor/hypervisor.ts";
import { isSecretRef, type Service } from "../model/kinds.ts";
import { warmMachines } from "../model/service-rules.ts";
import { messageOf } from "../shared/errors.ts";
import type { WarmPool, WarmTemplate } from "./warm-pool.ts";

export interface WarmDemandOptions {
  client: PithClient;
  pool: WarmPool;
  /** The image's boot files on this node; rejects if the node lacks the image. */
  bootSource: (digest: string) => Promise<Pick<MachineSpec, "image" | "kernel" | "initrd" | "disk">>;
  log?: (message: string) => void;
}

/**
 * Follows the Services (list and watch through the API, as the agent's machines are followed)
 * and tells the warm pool what each wants on this node: `spec.warm` machines of the service's
 * resolved image and env. A machine the service controller makes for that template has the same
 * image and env, so it takes one of them (WarmPool.keyOf).
 *
 * Left without a pool, each said once in the log: a service whose image this node does not hold
 * yet (its first machine here pulls it; the pool fills at the next change or resync), and one
 * with env from Secrets (a paused machine would hold the values before any machine is placed
 * here, and the agent reads them only for a machine of its own).
 */
export class WarmDemand {
  private readonly services: Informer<Service>;
  private readonly log: (message: string) => void;
  private readonly said = new Set<string>();
  private wanted = new Set<string>();
  private running: Promise<void> = Promise.resolve();
  private again = false;
  private syncing = false;

  constructor(private readonly options: WarmDemandOptions) {
    this.log = options.log ?? (() => {});
    this.services = new Informer(apiSource(options.client, "Service"), { onError: (e) => this.log(`service cache: ${messageOf(e)}`) });
    const changed = (): void => this.sync();
    this.services.addHandler({ added: changed, updated: changed, deleted: changed });
  }

  /** Lists and watches until `signal` aborts; resolves once the first list is in. */
  async start(signal: AbortSignal): Promise<void> {
    const watching = this.services.run(signal);
    watching.catch((e: unknown) => this.log(`service watch ended: ${messageOf(e)}`));
    await Promise.race([this.services.synced(), watching]);
    this.sync();
  }

  /** Again from the cache (an image may have arrived on this node since). */
  sync(): void {
    if (this.syncing) {
      this.again = true;
      return;
    }
    this.syncing = true;
    this.running = this.syncOnce()
      .catch((e: unknown) => this.log(`warm pools: ${messageOf(e)}`))
      .finally(() => {
        this.syncing = false;
        if (this.again) {
          this.again = false;
          this.sync();
        }
      });
  }

  /** Settles once the pass under way (if any) is done: for tests. */
  settled(): Promise<void> {
    return this.running;
  }

  private async syncOnce(): Promise<void> {
    const now = new Set<string>();
    for (const service of this.services.list()) {
      const template = await this.templateOf(service);
      if (!template) continue;
      now.add(service.metadata.name);
      this.options.pool.want(service.metadata.name, template);
    }
    for (const name of this.wanted) if (!now.has(name)) this.options.pool.want(name, undefined);
    this.wanted = now;
  }

  private async templateOf(service: Service): Promise<WarmTemplate | undefined> {
    const count = warmMachines(service.spec);
    const digest = service.status.imageDigest;
    if (count <= 0 || !digest) return undefined;
    const name = service.metadata.name;
    const env: Record<string, string> = {};
    for (const [key, value] of Object.entries(service.spec.env ?? {})) {
      if (isSecretRef(value)) {
        this.sayOnce(`${name} secrets`, `warm pool ${name}: none kept, its env reads Secrets (${key})`);
        return undefined;
      }
      env[key] = value;
    }
    try {
      return { spec: { ...(await this.options.bootSource(digest)), env }, count };
    } catch (e) {
      this.sayOnce(`${name} ${digest}`, `warm pool ${name}: none yet, image ${digest.slice(7, 19)} is not on this node: ${messageOf(e)}`);
      return undefined;
    }
  }

  private sayOnce(key: string, message: string): void {
    if (this.said.has(key)) return;
    this.said.add(key);
    this.log(message);
  }
}
