import assert from "node:assert/strict";
import { test } from "node:test";
import { ApiError, PithClient } from "../client/index.ts";
import type { Machine, MachineStatus } from "../model/kinds.ts";
import { StatusReports } from "./status-reports.ts";

const written = (name: string, status: MachineStatus) => ({ metadata: { name }, status }) as unknown as Machine;

/** A client that answers batches (or, `old`, has no batch route) and records what it was sent. */
class RecordingClient extends PithClient {
  batches: string[][] = [];
  singles: string[] = [];
  constructor(private readonly old = false) {
    super({ server: "http://127.0.0.1:9", token: "t" });
  }
  override async updateMachineStatuses(entries: readonly { name: string; status: MachineStatus }[]): Promise<(Machine | ApiError)[]> {
    await new Promise((resolve) => setImmediate(resolve));
    if (this.old) throw new ApiError(404, "NotFound", "no route POST /api/v1/machine-statuses");
    this.batches.push(entries.map((e) => e.name));
    return entries.map((e) => (e.name === "gone" ? new ApiError(404, "NotFound", "Machine gone not found") : written(e.name, e.status)));
  }
  override async updateStatus(_kind: string, name: string, status: MachineStatus): Promise<never> {
    this.singles.push(name);
    return written(name, status) as never;
  }
}

test("writes asked for while a request is on its way go together in the next one, each answered on its own", async () => {
  const client = new RecordingClient();
  const reports = new StatusReports(client);
  const names = ["a", "b", "gone", "c", "d"];
  const outcomes = await Promise.allSettled(names.map((n) => reports.write(n, { phase: "ready" })));
  assert.deepEqual(client.batches, [["a"], ["b", "gone", "c", "d"]], "the first goes at once, the rest wait for it and go together");
  assert.deepEqual(outcomes.map((o) => o.status), ["fulfilled", "fulfilled", "rejected", "fulfilled", "fulfilled"]);
  const gone = outcomes[2] as PromiseRejectedResult;
  assert.ok(gone.reason instanceof ApiError && gone.reason.status === 404, "the missing machine's own 404");
  assert.equal((outcomes[3] as PromiseFulfilledResult<Machine>).value.metadata.name, "c");
});

test("a control plane without the batch route gets one request per write", async () => {
  const client = new RecordingClient(true);
  const reports = new StatusReports(client);
  const machines = await Promise.all(["a", "b", "c"].map((n) => reports.write(n, { phase: "ready" })));
  assert.deepEqual(machines.map((m) => m.metadata.name), ["a", "b", "c"]);
  await reports.write("d", { phase: "ready" });
  assert.deepEqual(client.singles.sort(), ["a", "b", "c", "d"]);
});
