import assert from "node:assert/strict";
import { describe, test } from "node:test";
import type { TSchema } from "@sinclair/typebox";
import { Check, Create } from "@sinclair/typebox/value";
import { ServiceSpecSchema } from "../../api/schemas/kinds.ts";
import { histogram, proxyRequestsByService, quantile } from "./charts.ts";
import { checkServiceManifest, locateServerDetails, serviceToYaml } from "./manifest.ts";
import type { Service, ServiceSpec } from "./types.ts";

const service: Service = {
  apiVersion: "pith.dev/v1",
  kind: "Service",
  metadata: { name: "web", uid: "u", resourceVersion: "7", generation: 2, labels: {}, createdAt: "", updatedAt: "" },
  spec: { image: "static-c", replicas: 2 },
  status: { ready: 2 },
};
const yaml = serviceToYaml(service);
const lineOf = (text: string, needle: string) => text.split("\n").findIndex((l) => l.includes(needle)) + 1;
const withSpec = (spec: unknown): string => serviceToYaml({ ...service, spec: spec as ServiceSpec });

type Path = string[];
type Json = Record<string, unknown>;

/** Every field of an object schema, nested objects' fields too, parents before children. */
function* fields(schema: TSchema, at: Path = []): Generator<{ path: Path; schema: TSchema }> {
  for (const [name, field] of Object.entries((schema.properties ?? {}) as Record<string, TSchema>)) {
    yield { path: [...at, name], schema: field };
    if (field.type === "object") yield* fields(field, [...at, name]);
  }
}

/**
 * Values the walk cannot make up from a schema alone (a pattern, a map's keys). Keyed by path;
 * a new field that needs one fails the walk below with its path, rather than going untested.
 */
const SAMPLES: Record<string, unknown[]> = {
  image: ["static-c", "sha256:" + "ab".repeat(32), "abcd"],
  env: [{ GREETING: "hello", _X1: "" }],
  hosts: [["web.example.com", "a"]],
};

/** Valid values for one field: every option of an enum, both ends of a range, or a created value. */
function samples(path: Path, schema: TSchema): unknown[] {
  const given = SAMPLES[path.join(".")] ?? [];
  if (Array.isArray(schema.anyOf) && schema.anyOf.every((o: Json) => "const" in o)) return [...given, ...schema.anyOf.map((o: Json) => o.const)];
  if (schema.type === "integer") return [...given, ...[schema.minimum, schema.maximum].filter((n) => n !== undefined)];
  if (given.length) return given;
  try {
    return [Create(schema)];
  } catch (error) {
    throw new Error(`spec.${path.join(".")}: add a valid sample to SAMPLES (${(error as Error).message})`);
  }
}

const getAt = (value: unknown, path: Path): unknown => path.reduce<unknown>((v, key) => (v as Json | undefined)?.[key], value);

/** The smallest valid spec with `value` at `path`, any enclosing object created from its schema. */
/** Fields valid only beside another (service-rules.ts): what each needs to be judged alone. */
const COMPANIONS: Record<string, Json> = { warm: { startMode: "snapshot" } };

function specWith(path: Path, value: unknown): Json {
  const spec: Json = { image: "static-c", ...COMPANIONS[path[0]!] };
  let parent = spec;
  let schema: TSchema = ServiceSpecSchema;
  for (const key of path.slice(0, -1)) {
    schema = (schema.properties as Record<string, TSchema>)[key]!;
    parent = (parent[key] ??= Create(schema)) as Json;
  }
  parent[path[path.length - 1]!] = value;
  return spec;
}

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
    assert.match(byPath["spec.replicas"]!.message, /must be >= 0/);
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

  test("every field of the API's Service spec, nested too, is accepted with every kind of valid value", () => {
    const seen: string[] = [];
    for (const field of fields(ServiceSpecSchema)) {
      for (const value of samples(field.path, field.schema)) {
        const spec = specWith(field.path, value);
        const where = `spec.${field.path.join(".")} = ${JSON.stringify(value)}`;
        assert.ok(Check(ServiceSpecSchema, spec), `the test's own sample is valid for the API: ${where}`);
        const result = checkServiceManifest(withSpec(spec), "web");
        assert.deepEqual(result.problems, [], where);
        assert.deepEqual(getAt(result.manifest?.spec, field.path), value, `${where} is kept as written`);
      }
      seen.push(field.path.join("."));
    }
    // The walk itself must reach into nested objects, and the field that drifted once.
    for (const path of ["image", "replicas", "startMode", "update.maxSurge", "autoscale.idleSeconds"]) assert.ok(seen.includes(path), `walked ${path}: ${seen.join(", ")}`);
  });

  test("startMode: snapshot is accepted and kept; a made-up start mode is not", () => {
    const text = yaml.replace("replicas: 2", "replicas: 2\n  startMode: snapshot");
    const result = checkServiceManifest(text, "web");
    assert.deepEqual(result.problems, []);
    assert.equal(result.manifest?.spec.startMode, "snapshot");
    const bad = checkServiceManifest(yaml.replace("replicas: 2", "replicas: 2\n  startMode: hibernate"), "web").problems;
    assert.equal(bad.length, 1, JSON.stringify(bad));
    assert.deepEqual(bad[0]!.path, ["spec", "startMode"]);
    assert.match(bad[0]!.message, /must be one of "boot", "snapshot"/);
    assert.equal(bad[0]!.line, lineOf(text, "startMode"));
  });

  test("wrong types and values outside a field's range are reported on their line", () => {
    const text = withSpec({ image: "static-c", replicas: "two", update: { strategy: "rolling", maxSurge: 1.5, maxUnavailable: 0 }, autoscale: { targetInFlight: 0, idleSeconds: 86401 }, hosts: [""] });
    const { problems, manifest } = checkServiceManifest(text, "web");
    assert.equal(manifest, undefined);
    const byPath = Object.fromEntries(problems.map((p) => [p.path.join("."), p]));
    const expect = (path: string, message: RegExp, needle: string) => {
      assert.ok(byPath[path], `${path} is reported: ${JSON.stringify(problems)}`);
      assert.match(byPath[path].message, message);
      assert.equal(byPath[path].line, lineOf(text, needle), path);
    };
    expect("spec.replicas", /must be an integer/, "replicas:");
    expect("spec.update.maxSurge", /must be an integer/, "maxSurge:");
    expect("spec.autoscale.targetInFlight", /must be >= 1/, "targetInFlight:");
    expect("spec.autoscale.idleSeconds", /must be <= 86400/, "idleSeconds:");
    expect("spec.hosts.0", /must be a host name/, '- ""');
  });

  test("every integer field's range ends are enforced, one past either end reported on its line", () => {
    let checked = 0;
    for (const field of fields(ServiceSpecSchema)) {
      if (field.schema.type !== "integer") continue;
      for (const [bound, past] of [[field.schema.minimum, -1], [field.schema.maximum, 1]] as const) {
        if (bound === undefined) continue;
        const text = withSpec(specWith(field.path, (bound as number) + past));
        const problems = checkServiceManifest(text, "web").problems;
        const name = field.path[field.path.length - 1]!;
        assert.deepEqual(problems.map((p) => p.path.join(".")), [`spec.${field.path.join(".")}`], `${name} = ${(bound as number) + past}`);
        assert.equal(problems[0]!.line, lineOf(text, `${name}:`));
        checked++;
      }
    }
    assert.ok(checked >= 8, `checked ${checked} bounds`);
  });

  test("a field far from every known one lists them; status is the control plane's", () => {
    const text = yaml.replace("replicas: 2", "replicas: 2\n  zzzzzz: 1") + "status:\n  ready: 2\n";
    const byPath = Object.fromEntries(checkServiceManifest(text, "web").problems.map((p) => [p.path.join("."), p]));
    assert.match(byPath["spec.zzzzzz"]!.message, /unknown field "zzzzzz"; the fields here are image, replicas, .*startMode/);
    assert.equal(byPath["spec.zzzzzz"]!.line, lineOf(text, "zzzzzz"));
    assert.equal(byPath["status"]!.line, lineOf(text, "status:"));
  });

  test("a missing name is reported once, by the schema; so is a document that is not a mapping", () => {
    const text = yaml.replace("name: web", "labels: {}");
    const { problems } = checkServiceManifest(text, "web");
    assert.deepEqual(problems.map((p) => [p.path.join("."), p.message]), [["metadata.name", "is required"]]);
    assert.equal(problems[0]!.line, lineOf(text, "labels: {}"), "placed on the enclosing metadata");
    assert.deepEqual(checkServiceManifest("just text\n", "web").problems.map((p) => p.message), ["must be an object"]);
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
