import { isApiError, type PithClient } from "../client/index.ts";
import type { Machine, MachineStatus } from "../model/kinds.ts";

/** What one request may carry (the API's bound, routes/machine-statuses.ts). */
const MAX_BATCH = 256;

interface Pending {
  name: string;
  status: MachineStatus;
  resolve: (machine: Machine) => void;
  reject: (error: unknown) => void;
}

/**
 * The agent's machine status writes, sent together: a write asked for while a request is on its
 * way waits for it and goes in the next request with every other write asked for meanwhile, so a
 * thousand machines starting at once cost a few dozen requests, not two thousand. Each write
 * still resolves with its own machine or rejects with its own error, as `updateStatus` would.
 * A control plane without the batch route (older than it) gets one request per write.
 */
export class StatusReports {
  private queued: Pending[] = [];
  private sending = false;
  private batches = true;

  constructor(private readonly client: PithClient) {}

  write(name: string, status: MachineStatus): Promise<Machine> {
    if (!this.batches) return this.client.updateStatus("Machine", name, status);
    return new Promise<Machine>((resolve, reject) => {
      this.queued.push({ name, status, resolve, reject });
      if (!this.sending) void this.send();
    });
  }

  private async send(): Promise<void> {
    this.sending = true;
    try {
      while (this.queued.length > 0) {
        const batch = this.queued.splice(0, MAX_BATCH);
        await this.sendBatch(batch);
      }
    } finally {
      this.sending = false;
    }
  }

  private async sendBatch(batch: Pending[]): Promise<void> {
    let answers;
    try {
      answers = await this.client.updateMachineStatuses(batch.map(({ name, status }) => ({ name, status })));
    } catch (error) {
      if (this.batches && isApiError(error, 404) && error.code === "NotFound") {
        // No such route: a control plane from before it. One request per write from now on.
        this.batches = false;
        for (const p of batch) this.client.updateStatus("Machine", p.name, p.status).then(p.resolve, p.reject);
        for (const p of this.queued.splice(0)) this.client.updateStatus("Machine", p.name, p.status).then(p.resolve, p.reject);
        return;
      }
      for (const p of batch) p.reject(error);
      return;
    }
    for (const [i, p] of batch.entries()) {
      const answer = answers[i]!;
      if (answer instanceof Error) p.reject(answer);
      else p.resolve(answer);
    }
  }
}
