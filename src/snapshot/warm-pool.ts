import { randomBytes } from "node:crypto";
import type { Hypervisor, Machine, MachineSpec } from "../hypervisor/hypervisor.ts";
import { messageOf } from "../shared/errors.ts";
import { keyedEnv, type MachineStarter } from "./machine-starter.ts";
import { envKey } from "./snapshot-store.ts";
import { warmUp } from "./warm-up.ts";

/** What one pool holds: `count` machines of `spec`'s image and env (its id and state dir are the pool's). */
export interface WarmTemplate {
  spec: Omit<MachineSpec, "id" | "stateDir">;
  count: number;
}

/** What a machine that takes a warm one must be: its id, and the image and env it is matched on (keyOf). */
export type WarmClaim = Pick<MachineSpec, "id" | "env" | "secretHashes"> & { image: Pick<MachineSpec["image"], "digest"> };

export interface WarmPoolOptions {
  hypervisor: Hypervisor;
  /** Makes or finds the snapshot the pool's machines are restored from. */
  starter: MachineStarter;
  /** Where a pool machine with this id keeps its console and sockets. */
  stateDirFor: (id: string) => string;
  /** Requests each machine answers before it is paused (see warm-up.ts); default 8. */
  warmUpRequests?: number;
  /**
   * Whether the host has room for one more machine of `memoryMiB` beside everything it runs and
   * the pools hold (heldMemoryMiB); asked before each fill. Default: always. A pool without room
   * waits until `refill()`.
   */
  hasRoomFor?: (memoryMiB: number) => boolean;
  /** After a failed fill, the next try waits this long (doubling, at most a minute); default 2 s. */
  retryMs?: number;
  log?: (message: string) => void;
}

/** How long after a claimed machine is ready its pool starts refilling. */
const REFILL_DELAY_MS = 500;

/** A pool machine's id: `warm-<pool>-<hex>`, so a restarted agent tells pool machines from others. */
export const WARM_MACHINE_PREFIX = "warm-";

interface Pool {
  name: string;
  /** Image, snapshot tag-free shape and env: which machines the pool's can become. */
  key: string;
  template: WarmTemplate;
  /** Paused, warmed machines, oldest first. */
  ready: Machine[];
  filling: number;
  /** Bumped when the template changes or the pool is dropped: fills begun before it discard their machine. */
  generation: number;
  failures: number;
  retry?: NodeJS.Timeout;
  /** The last fill found no room on the host (said once until a fill goes ahead). */
  roomless?: boolean;
}

/**
 * Warm pools: per service, N machines restored from its snapshot, run through warm-up requests
 * (so TCG has translated, and V8 compiled, the request path), then paused. They have no Machine
 * object, so nothing routes to them. `take` gives one a claimed identity (the restore handshake:
 * new id, env, clock and seed) and lets it run, far sooner than a restore; the pool refills.
 *
 * A pool machine is made for one service's image and env and has answered only Pith's own
 * warm-up requests; once claimed it belongs to that machine for good and never returns. A new
 * template (image, env: a new snapshot) discards the pool's machines, and so does dropping it.
 */
export class WarmPool {
  private readonly pools = new Map<string, Pool>();
  private closed = false;
  private readonly log: (message: string) => void;

  constructor(private readonly options: WarmPoolOptions) {
    this.log = options.log ?? (() => {});
  }

  /** The key a machine spec is matched on: a pool machine can become only a machine of the same image and env. */
  static keyOf(spec: WarmClaim | WarmTemplate["spec"]): string {
    return `${spec.image.digest} ${envKey(keyedEnv(spec))}`;
  }

  /**
   * What pool `name` should hold; undefined (or a count of 0) drops it. A template of another
   * image or env discards the machines the pool has; a new count fills or trims it.
   */
  want(name: string, template: WarmTemplate | undefined): void {
    if (this.closed) return;
    const existing = this.pools.get(name);
    if (!template || template.count <= 0) {
      if (existing) this.drop(existing, "no warm machines wanted");
      return;
    }
    const key = WarmPool.keyOf(template.spec);
    if (existing && existing.key !== key) this.drop(existing, "its template changed");
    const pool = this.pools.get(name) ?? this.create(name, key, template);
    pool.template = template;
    while (pool.ready.length > template.count) void this.discard(pool.ready.pop()!, `pool ${name} wants ${template.count}`);
    this.fill(pool);
  }

  /**
   * A warm machine of pool `name` (a service's) for `spec`, claimed as `spec.id`; undefined if
   * that pool has none ready, or its machines are of another image or env than `spec` (a machine
   * of an older template). Another service's pool is never used, even with the same image and
   * env: each pool is sized, counted and drained for its own service. The pool refills behind it.
   */
  async take(name: string, spec: WarmClaim): Promise<Machine | undefined> {
    const pool = this.pools.get(name);
    if (pool && pool.key === WarmPool.keyOf(spec)) {
      for (let machine = pool.ready.shift(); machine; machine = pool.ready.shift()) {
        if (machine.exit || !machine.claim) continue;
        try {
          await machine.claim({ id: spec.id, ...(spec.env ? { env: spec.env } : {}) });
        } catch (e) {
          this.log(`warm pool ${pool.name}: cannot claim ${machine.id}: ${messageOf(e)}`);
          void this.discard(machine, "its claim failed");
          continue;
        }
        this.refillAfter(pool, machine);
        return machine;
      }
      this.fill(pool);
    }
    return undefined;
  }

  /**
   * The refill starts once the claimed machine is ready (or gone) and has had REFILL_DELAY_MS for
   * its first requests: a restore next to it would take the CPU its first answer needs.
   */
  private refillAfter(pool: Pool, claimed: Machine): void {
    const later = (): void => void setTimeout(() => this.fill(pool), REFILL_DELAY_MS).unref();
    claimed.whenReady().then(later, later);
  }

  /**
   * The memory the pools' machines hold, ready or being made: each holds its whole RAM, which no
   * Machine object accounts for, so the Node reports it and the scheduler counts it as taken.
   */
  heldMemoryMiB(): number {
    let held = 0;
    for (const pool of this.pools.values()) held += (pool.ready.length + pool.filling) * pool.template.spec.image.capabilities.memoryMiB;
    return held;
  }

  /**
   * Tries again the pools that found no room on the host: it may have some now. Only those: a
   * pool that just gave a machine away waits REFILL_DELAY_MS past its claim (refillAfter).
   */
  refill(): void {
    for (const pool of this.pools.values()) if (pool.roomless) this.fill(pool);
  }

  /** Paused machines ready per pool, for the Node's status. */
  counts(): Record<string, number> {
    return Object.fromEntries([...this.pools.values()].map((p) => [p.name, p.ready.length]));
  }

  /** Every machine the pools hold (ready ones), for the agent's saved handles: a restarted agent finds and discards them. */
  machines(): Machine[] {
    return [...this.pools.values()].flatMap((p) => p.ready);
  }

  /**
   * Stops filling and stops every pooled machine; resolves once they are stopped and the fills
   * under way have ended (their machines discarded too), so nothing of the pools' is left running.
   */
  async close(): Promise<void> {
    this.closed = true;
    const stopping: Promise<unknown>[] = [...this.fills];
    for (const pool of this.pools.values()) {
      pool.generation++;
      clearTimeout(pool.retry);
      stopping.push(...pool.ready.splice(0).map((m) => m.stop(0)));
    }
    this.pools.clear();
    await Promise.allSettled(stopping);
  }

  private create(name: string, key: string, template: WarmTemplate): Pool {
    const pool: Pool = { name, key, template, ready: [], filling: 0, generation: 0, failures: 0 };
    this.pools.set(name, pool);
    return pool;
  }

  private drop(pool: Pool, why: string): void {
    pool.generation++;
    clearTimeout(pool.retry);
    this.pools.delete(pool.name);
    for (const machine of pool.ready.splice(0)) void this.discard(machine, why);
  }

  /** Settles once the machine is stopped (or could not be: said in the log). */
  private discard(machine: Machine, why: string): Promise<void> {
    this.log(`warm pool: discarding ${machine.id}: ${why}`);
    // A paused guest cannot shut down politely: no grace, QEMU is quit.
    return machine.stop(0).then(
      () => undefined,
      (e: unknown) => this.log(`warm pool: cannot stop ${machine.id}: ${messageOf(e)}`),
    );
  }

  /** One machine at a time per pool: the host has few cores, and the pool's machines need the same snapshot. */
  private fill(pool: Pool): void {
    if (this.closed || pool.filling > 0 || pool.retry || this.pools.get(pool.name) !== pool) return;
    if (pool.ready.length >= pool.template.count) return;
    const memoryMiB = pool.template.spec.image.capabilities.memoryMiB;
    if (this.options.hasRoomFor && !this.options.hasRoomFor(memoryMiB)) {
      if (!pool.roomless) this.log(`warm pool ${pool.name}: no room on this host for another ${memoryMiB} MiB machine; it fills once there is`);
      pool.roomless = true;
      return;
    }
    pool.roomless = false;
    pool.filling++;
    const generation = pool.generation;
    const fill = this.makeOne(pool)
      .then((machine) => {
        if (pool.generation !== generation || this.pools.get(pool.name) !== pool || this.closed) {
          return this.discard(machine, this.closed ? "the pools are closing" : "the pool changed while it warmed up");
        }
        pool.failures = 0;
        // Its count was lowered while this one warmed up (want() trims only ready machines).
        if (pool.ready.length >= pool.template.count) return this.discard(machine, `pool ${pool.name} wants ${pool.template.count}`);
        pool.ready.push(machine);
        void machine.whenExited().then(() => {
          const at = pool.ready.indexOf(machine);
          if (at >= 0) pool.ready.splice(at, 1);
          this.fill(pool);
        });
      })
      .catch((e: unknown) => {
        if (this.closed) return;
        pool.failures++;
        const wait = Math.min(60_000, (this.options.retryMs ?? 2000) * 2 ** (pool.failures - 1));
        this.log(`warm pool ${pool.name}: cannot make a warm machine (retrying in ${wait} ms): ${messageOf(e)}`);
        pool.retry = setTimeout(() => {
          pool.retry = undefined;
          this.fill(pool);
        }, wait);
        pool.retry.unref();
      })
      .finally(() => {
        pool.filling--;
        this.fills.delete(fill);
        this.fill(pool);
      });
    this.fills.add(fill);
  }

  /** Fills under way (all pools'), settled once their machine is in a pool or discarded. */
  private readonly fills = new Set<Promise<void>>();

  /** Restored from the template's snapshot (made if there is none), warmed up, paused. */
  private async makeOne(pool: Pool): Promise<Machine> {
    const { hypervisor, starter, stateDirFor } = this.options;
    const id = `${WARM_MACHINE_PREFIX}${pool.name.slice(0, 48)}-${randomBytes(3).toString("hex")}`;
    const spec: MachineSpec = { ...pool.template.spec, id, stateDir: stateDirFor(id) };
    const snapshot = await starter.prepare(spec);
    const machine = await hypervisor.start({ ...spec, restoreFrom: snapshot.stateFile, warmPool: true });
    try {
      if (!machine.pause || !machine.claim) throw new Error(`the ${hypervisor.name} hypervisor cannot pause machines`);
      await machine.whenReady();
      await warmUp(machine, spec.image, this.options.warmUpRequests ?? 8);
      await machine.pause();
      return machine;
    } catch (e) {
      await machine.stop(0).catch(() => undefined);
      throw e;
    }
  }
}
