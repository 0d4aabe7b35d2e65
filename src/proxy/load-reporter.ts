import type { ServiceLoad } from "./exchange/service-state.ts";

/** What the autoscaler is told about a service. */
export interface LoadReport {
  inFlight: number;
  waiting: number;
}

/** While a service has traffic, its load is reported this often (and at once when a hold starts)... */
const REPORT_MS = 500;
/** ...as the average of samples taken this often, so a momentary burst is not a trend. */
const SAMPLE_MS = 50;

interface Samples {
  sum: number;
  count: number;
  /** In flight as last reported: what a hold's report says too. */
  average: number;
}

/**
 * Reports each busy service's load to the autoscaler every 0.5 s, and each service once more when
 * it goes quiet (so its idle clock starts). In flight is reported as an average over the last
 * window: when a cold start releases twenty held requests at once, that is twenty in flight for a
 * moment, not load worth a second machine.
 */
export class LoadReporter {
  readonly #report: (service: string, load: LoadReport) => void;
  readonly #samples = new Map<string, Samples>();
  readonly #lastReported = new Map<string, string>();
  #timers: NodeJS.Timeout[] = [];

  constructor(report: (service: string, load: LoadReport) => void) {
    this.#report = report;
  }

  /** A hold started or ended: reported now, with the averaged in-flight count. */
  readonly demand = (service: string, load: { waiting: number }): void => {
    this.#report(service, { inFlight: this.#samples.get(service)?.average ?? 0, waiting: load.waiting });
  };

  /** Samples and reports `load()` until stop(). */
  start(load: () => Record<string, ServiceLoad>): void {
    this.#timers.push(
      setInterval(() => this.#sample(load()), SAMPLE_MS),
      setInterval(() => this.#reportAll(load()), REPORT_MS),
    );
  }

  stop(): void {
    for (const timer of this.#timers) clearInterval(timer);
    this.#timers = [];
  }

  #sample(load: Record<string, ServiceLoad>): void {
    for (const [service, { inFlight }] of Object.entries(load)) {
      const s = this.#samples.get(service) ?? { sum: 0, count: 0, average: 0 };
      s.sum += inFlight;
      s.count++;
      this.#samples.set(service, s);
    }
  }

  #reportAll(load: Record<string, ServiceLoad>): void {
    for (const [service, { waiting }] of Object.entries(load)) {
      const s = this.#samples.get(service);
      const inFlight = s && s.count > 0 ? Math.round((s.sum / s.count) * 10) / 10 : 0;
      if (s) Object.assign(s, { sum: 0, count: 0, average: inFlight });
      const key = `${inFlight}/${waiting}`;
      if (inFlight + waiting === 0 && this.#lastReported.get(service) === key) continue;
      this.#lastReported.set(service, key);
      this.#report(service, { inFlight, waiting });
    }
  }
}
