/**
 * Where proxies report each service's load (requests in flight, requests held waiting for a
 * machine) for the autoscaler. Ephemeral by design: load is a rate, not state; after a restart
 * the next reports (every half second while there is traffic) refill it.
 */
export interface ServiceLoad {
  inFlight: number;
  waiting: number;
}

/** A report older than this no longer describes the present. */
const STALE_MS = 3000;

export class LoadBoard {
  private readonly loads = new Map<string, ServiceLoad & { at: number }>();
  private readonly listeners: ((service: string, load: ServiceLoad) => void)[] = [];

  report(service: string, load: ServiceLoad): void {
    const previous = this.loads.get(service);
    this.loads.set(service, { ...load, at: Date.now() });
    // A request waiting for a machine must wake the service now, not at the next resync.
    if (!previous || previous.waiting !== load.waiting || previous.inFlight !== load.inFlight) for (const l of this.listeners) l(service, load);
  }

  get(service: string, now = Date.now()): ServiceLoad | undefined {
    const load = this.loads.get(service);
    return load && now - load.at < STALE_MS ? { inFlight: load.inFlight, waiting: load.waiting } : undefined;
  }

  onReport(listener: (service: string, load: ServiceLoad) => void): void {
    this.listeners.push(listener);
  }
}
