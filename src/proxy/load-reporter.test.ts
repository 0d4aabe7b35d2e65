import assert from "node:assert/strict";
import { test } from "node:test";
import type { ServiceLoad } from "./exchange/service-state.ts";
import { type LoadReport, LoadReporter } from "./load-reporter.ts";
import { until } from "./test-support.ts";

test("reports the averaged in-flight count, a hold at once with that average, and a service once more when it goes quiet", async (t) => {
  const reports: (LoadReport & { service: string })[] = [];
  const reporter = new LoadReporter((service, load) => reports.push({ service, ...load }));
  t.after(() => reporter.stop());
  let load: Record<string, ServiceLoad> = { web: { inFlight: 3, waiting: 0, backends: 1 } };
  reporter.start(() => load);

  await until(() => reports.length > 0, 3000, "the first report");
  assert.deepEqual(reports[0], { service: "web", inFlight: 3, waiting: 0 });

  reporter.demand("web", { waiting: 2 });
  assert.deepEqual(reports.at(-1), { service: "web", inFlight: 3, waiting: 2 }, "a hold is reported at once, with the last average");

  load = { web: { inFlight: 0, waiting: 0, backends: 1 } };
  await until(() => reports.at(-1)?.inFlight === 0, 3000, "the quiet report");
  assert.deepEqual(reports.at(-1), { service: "web", inFlight: 0, waiting: 0 });
});
