import assert from "node:assert/strict";
import { test } from "node:test";
import { bucketQuantile, proxyLatencyBuckets } from "./charts.ts";

const metrics = (fast: number, slow: number) =>
  [
    "# TYPE pith_proxy_request_duration_seconds histogram",
    `pith_proxy_request_duration_seconds_bucket{le="0.001",service="web"} ${fast}`,
    `pith_proxy_request_duration_seconds_bucket{le="0.01",service="web"} ${fast + slow}`,
    `pith_proxy_request_duration_seconds_bucket{le="+Inf",service="web"} ${fast + slow}`,
  ].join("\n");

test("latency quantiles come from the histogram, interpolated within a bucket", () => {
  const buckets = proxyLatencyBuckets(metrics(50, 50)).get("web")!;
  assert.deepEqual(buckets.map((b) => b.le), [0.001, 0.01, Infinity]);
  assert.equal(bucketQuantile(0.5, buckets), 0.001);
  assert.ok(Math.abs(bucketQuantile(0.99, buckets)! - 0.00982) < 1e-9);
});

test("between two samples only what arrived in between counts", () => {
  const before = proxyLatencyBuckets(metrics(100, 0)).get("web")!;
  const now = proxyLatencyBuckets(metrics(100, 10)).get("web")!;
  // The ten new requests were all slow.
  assert.ok(bucketQuantile(0.5, now, before)! > 0.001);
  assert.equal(bucketQuantile(0.5, before, before), undefined, "nothing new: no quantile");
});
