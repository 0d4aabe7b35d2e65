import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { histogram, proxyRequestsByService, quantile } from "./charts.ts";
import { checkServiceManifest, locateServerDetails, serviceToYaml } from "./manifest.ts";
import type { Service } from "./types.ts";

const service: Service = {
  apiVersion: "pith.dev/v1",
  kind: "Service",
  metadata: { name: "web", uid: "u", resourceVersion: "7", generation: 2, labels: {}, createdAt: "", updatedAt: "" },
  spec: { image: "static-c", replicas: 2 },
  status: { ready: 2 },
};
const yaml = serviceToYaml(service);
const lineOf = (text: string, needle: string) => text.split("\n").findIndex((l) => l.includes(needle)) + 1;

describe("the manifest editor's checks", () => {
  test("a service's manifest round-trips, without status or server-assigned metadata", () => {
    assert.doesNotMatch(yaml, /status|uid|resourceVersion|generation/);
    const result = checkServiceManifest(yaml, "web");
    assert.deepEqual(result.problems, []);
    assert.deepEqual(result.manifest, { apiVersion: "pith.dev/v1", kind: "Service", metadata: { name: "web" }, spec: { image: "static-c", replicas: 2 } });
  });

  test("YAML syntax errors come with their line", () => {
    const text = yaml.replace("replicas: 2", "replicas: [2");
    const { problems, manifest } = checkServiceManifest(text, "web");
    assert.equal(manifest, undefined);
    assert.ok(problems.length > 0);
    assert.ok(problems.every((p) => typeof p.line === "number" && p.line >= lineOf(text, "replicas")), JSON.stringify(problems));
  });

  test("wrong values, unknown fields (with a guess) and renames point at their line", () => {
    const text = yaml.replace("replicas: 2", "replicas: -1\n  replics: 3").replace("name: web", "name: other");
    const { problems } = checkServiceManifest(text, "web");
    const byPath = Object.fromEntries(problems.map((p) => [p.path.join("."), p]));
    assert.match(byPath["spec.replicas"]!.message, /non-negative integer/);
    assert.equal(byPath["spec.replicas"]!.line, lineOf(text, "replicas: -1"));
    assert.match(byPath["spec.replics"]!.message, /did you mean replicas\?/);
    assert.equal(byPath["spec.replics"]!.line, lineOf(text, "replics"));
    assert.match(byPath["metadata.name"]!.message, /cannot be renamed/);
  });

  test("env values must be strings, names valid and not reserved; the API's cross-field rules apply", () => {
    const env = checkServiceManifest(yaml.replace("replicas: 2", "replicas: 2\n  env:\n    PORT: 8080\n    PITH_X: a"), "web").problems;
    assert.ok(env.some((p) => p.path.join(".") === "spec.env.PORT" && /quote it/.test(p.message)));
    const reserved = checkServiceManifest(yaml.replace("replicas: 2", "replicas: 2\n  env:\n    PITH_X: a"), "web").problems;
    assert.ok(reserved.some((p) => /reserved/.test(p.message)), JSON.stringify(reserved));
    const both = checkServiceManifest(yaml.replace("replicas: 2", "replicas: 2\n  min: 1\n  max: 3"), "web").problems;
    assert.ok(both.some((p) => /min\/max/.test(p.message)));
  });

  test("the server's 400 details map onto lines", () => {
    const [problem] = locateServerDetails(yaml, [{ path: "/spec/replicas", message: "must be <= 1000" }]);
    assert.equal(problem?.line, lineOf(yaml, "replicas"));
  });
});

describe("chart helpers", () => {
  test("histogram bins cover every value with a 1-2-5 step", () => {
    const values = [900, 950, 1010, 1540, 1560];
    const bins = histogram(values);
    assert.equal(bins.reduce((n, b) => n + b.count, 0), values.length);
    assert.ok(bins[0]!.from <= 900 && bins[bins.length - 1]!.to > 1560);
    assert.ok([1, 2, 5, 10].includes((bins[0]!.to - bins[0]!.from) / 10 ** Math.floor(Math.log10(bins[0]!.to - bins[0]!.from))));
    assert.deepEqual(histogram([]), []);
    assert.equal(histogram([5, 5, 5]).reduce((n, b) => n + b.count, 0), 3);
    assert.equal(quantile([1, 2, 3, 4], 0.5), 2);
  });

  test("proxy requests are summed per service from Prometheus text", () => {
    const text = [
      "# HELP pith_proxy_requests_total Requests",
      "# TYPE pith_proxy_requests_total counter",
      'pith_proxy_requests_total{service="web",status="200"} 12',
      'pith_proxy_requests_total{service="web",status="502"} 1',
      'pith_proxy_requests_total{service="api",status="200"} 3',
    ].join("\n");
    const result = proxyRequestsByService(text)!;
    assert.equal(result.get("web")?.total, 13);
    assert.equal(result.get("web")?.byStatus.get("502"), 1);
    assert.equal(result.get("api")?.total, 3);
    assert.equal(proxyRequestsByService("# nothing here\n"), undefined);
  });
});
