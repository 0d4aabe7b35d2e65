import { isMap, isScalar, isSeq, LineCounter, parseDocument, stringify, type Document } from "yaml";
import { serviceSpecRules } from "../../api/schemas/rules.ts";
import { closest } from "../../manifest/suggest.ts";
import { API_VERSION, type Service, type ServiceSpec } from "./types.ts";

/**
 * The service manifest editor's model: a Service as YAML, and every problem with an edited
 * manifest found before it is sent (YAML syntax with line numbers, unknown fields, wrong types
 * and values, and the same cross-field rules the API applies). The server has the last word;
 * its 400 details are mapped back to lines with `locate` as well.
 */
export interface Problem {
  /** Where in the document, as object keys / array indexes. */
  path: (string | number)[];
  message: string;
  line?: number;
  col?: number;
}

export interface ServiceManifest {
  apiVersion: typeof API_VERSION;
  kind: "Service";
  metadata: { name: string; labels?: Record<string, string> };
  spec: ServiceSpec;
}

export interface CheckResult {
  manifest?: ServiceManifest;
  problems: Problem[];
}

const TOP_FIELDS = ["apiVersion", "kind", "metadata", "spec"] as const;
const METADATA_FIELDS = ["name", "labels"] as const;
const SPEC_FIELDS = ["image", "replicas", "min", "max", "env", "hosts", "update", "autoscale"] as const;
const UPDATE_FIELDS = ["strategy", "maxSurge", "maxUnavailable"] as const;
const AUTOSCALE_FIELDS = { targetInFlight: [1, 10000], cooldownSeconds: [0, 86400], idleSeconds: [1, 86400] } as const;
const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

/** The manifest a user edits: what they declared, none of what the server adds. */
export function serviceToYaml(service: Service): string {
  const labels = service.metadata.labels ?? {};
  const manifest = {
    apiVersion: service.apiVersion,
    kind: service.kind,
    metadata: { name: service.metadata.name, ...(Object.keys(labels).length ? { labels } : {}) },
    spec: service.spec,
  };
  return stringify(manifest, { lineWidth: 0 });
}

export function checkServiceManifest(text: string, expectedName: string): CheckResult {
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, prettyErrors: true, uniqueKeys: true });
  if (doc.errors.length > 0) {
    return {
      problems: doc.errors.map((error) => {
        const at = error.linePos?.[0];
        // prettyErrors appends " at line L, column C:" and a code frame; the position is shown apart.
        const message = (error.message.split("\n")[0] ?? error.message).replace(/ at line \d+, column \d+:?$/, "");
        return { path: [], message, ...(at ? { line: at.line, col: at.col } : {}) };
      }),
    };
  }
  const problems: Problem[] = [];
  const add = (path: (string | number)[], message: string, onKey = false): void => {
    problems.push({ path, message, ...locate(doc, lineCounter, path, onKey) });
  };
  const value = doc.toJS() as unknown;
  if (!isObject(value)) {
    add([], "the manifest must be a mapping with apiVersion, kind, metadata and spec");
    return { problems };
  }
  unknownFields(value, [], TOP_FIELDS, add);
  if (value.apiVersion !== API_VERSION) add(["apiVersion"], `must be ${API_VERSION}`);
  if (value.kind !== "Service") add(["kind"], "must be Service (this editor changes a service)");

  const metadata = value.metadata;
  if (!isObject(metadata)) add(["metadata"], "is required: a mapping with the service's name");
  else {
    unknownFields(metadata, ["metadata"], METADATA_FIELDS, add);
    if (metadata.name !== expectedName) {
      add(["metadata", "name"], `must stay ${JSON.stringify(expectedName)}: a service cannot be renamed (create a new one and delete this one instead)`);
    }
    if (metadata.labels !== undefined) {
      if (!isObject(metadata.labels)) add(["metadata", "labels"], "must be a mapping of label names to strings");
      else for (const [key, label] of Object.entries(metadata.labels)) {
        if (typeof label !== "string") add(["metadata", "labels", key], `must be a string${quoteHint(label)}`);
      }
    }
  }

  const spec = value.spec;
  if (!isObject(spec)) add(["spec"], "is required: a mapping with at least image and replicas (or min/max)");
  else checkSpec(spec, add);

  if (problems.length === 0) {
    // The API's own cross-field rules (replicas vs min/max, min <= max, reserved env names).
    for (const detail of serviceSpecRules(spec as unknown as ServiceSpec)) add(pointerToPath(detail.path), detail.message);
  }
  if (problems.length > 0) return { problems: sortProblems(problems) };
  const meta = metadata as { name: string; labels?: Record<string, string> };
  return {
    manifest: {
      apiVersion: API_VERSION,
      kind: "Service",
      metadata: { name: meta.name, ...(meta.labels ? { labels: meta.labels } : {}) },
      spec: spec as unknown as ServiceSpec,
    },
    problems: [],
  };
}

type Add = (path: (string | number)[], message: string, onKey?: boolean) => void;

function checkSpec(spec: Record<string, unknown>, add: Add): void {
  unknownFields(spec, ["spec"], SPEC_FIELDS, add);
  if (typeof spec.image !== "string" || spec.image.trim() === "") add(["spec", "image"], "is required: an image name or digest");
  for (const field of ["replicas", "min", "max"] as const) {
    const n = spec[field];
    if (n !== undefined && !(Number.isInteger(n) && (n as number) >= 0 && (n as number) <= 1000)) {
      add(["spec", field], `must be a non-negative integer (0 to 1000), not ${show(n)}`);
    }
  }
  if (spec.replicas === undefined && spec.min === undefined && spec.max === undefined) {
    add(["spec"], "needs replicas (a fixed machine count) or min and max (autoscaling)");
  }
  if ((spec.min === undefined) !== (spec.max === undefined) && spec.replicas === undefined) {
    add(["spec", spec.min === undefined ? "max" : "min"], "min and max go together: set both");
  }
  if (spec.env !== undefined) {
    if (!isObject(spec.env)) add(["spec", "env"], "must be a mapping of variable names to strings, e.g. GREETING: hello");
    else for (const [name, v] of Object.entries(spec.env)) {
      if (!ENV_NAME.test(name)) add(["spec", "env", name], `invalid name ${JSON.stringify(name)}: letters, digits and '_', not starting with a digit`, true);
      if (typeof v !== "string") add(["spec", "env", name], `must be a string${quoteHint(v)}`);
    }
  }
  if (spec.hosts !== undefined) {
    if (!Array.isArray(spec.hosts)) add(["spec", "hosts"], "must be a list of host names, e.g. [web.example.com]");
    else spec.hosts.forEach((host, i) => {
      if (typeof host !== "string" || host.trim() === "") add(["spec", "hosts", i], "must be a non-empty host name");
    });
  }
  if (spec.update !== undefined) {
    const update = spec.update;
    if (!isObject(update)) add(["spec", "update"], "must be a mapping: {strategy: rolling, maxSurge, maxUnavailable}");
    else {
      unknownFields(update, ["spec", "update"], UPDATE_FIELDS, add);
      if (update.strategy !== "rolling") add(["spec", "update", "strategy"], "must be rolling");
      for (const field of ["maxSurge", "maxUnavailable"] as const) {
        const n = update[field];
        if (!(Number.isInteger(n) && (n as number) >= 0)) add(["spec", "update", field], n === undefined ? "is required: a non-negative integer" : `must be a non-negative integer, not ${show(n)}`);
      }
    }
  }
  if (spec.autoscale !== undefined) {
    const autoscale = spec.autoscale;
    if (!isObject(autoscale)) add(["spec", "autoscale"], "must be a mapping: {targetInFlight, cooldownSeconds, idleSeconds}");
    else {
      unknownFields(autoscale, ["spec", "autoscale"], Object.keys(AUTOSCALE_FIELDS), add);
      for (const [field, [min, max]] of Object.entries(AUTOSCALE_FIELDS)) {
        const n = autoscale[field];
        if (n !== undefined && !(Number.isInteger(n) && (n as number) >= min && (n as number) <= max)) {
          add(["spec", "autoscale", field], `must be an integer from ${min} to ${max}, not ${show(n)}`);
        }
      }
    }
  }
}

function unknownFields(object: Record<string, unknown>, at: (string | number)[], known: readonly string[], add: Add): void {
  for (const key of Object.keys(object)) {
    if (known.includes(key)) continue;
    const guess = closest(key, known);
    const where = at.length ? `${at.join(".")} ` : "";
    add([...at, key], `unknown field ${JSON.stringify(key)}${guess ? `: did you mean ${guess}?` : `; ${where}fields are ${known.join(", ")}`}`, true);
  }
}

/** Line and column (1-based) of the value at `path` (or its key), or of the nearest enclosing node. */
export function locate(doc: Document, lineCounter: LineCounter, path: (string | number)[], onKey = false): { line?: number; col?: number } {
  let node: unknown = doc.contents;
  let offset = (doc.contents as { range?: [number, number, number] } | null)?.range?.[0];
  for (let i = 0; i < path.length; i++) {
    const segment = path[i];
    const last = i === path.length - 1;
    if (isMap(node)) {
      const pair = node.items.find((p) => isScalar(p.key) && String(p.key.value) === String(segment));
      if (!pair) break;
      const keyRange = isScalar(pair.key) ? pair.key.range : undefined;
      const valueRange = (pair.value as { range?: [number, number, number] } | null)?.range;
      offset = (last && onKey ? keyRange : (valueRange ?? keyRange))?.[0] ?? offset;
      node = pair.value;
    } else if (isSeq(node)) {
      const item = node.items[Number(segment)] as { range?: [number, number, number] } | undefined;
      if (!item) break;
      offset = item.range?.[0] ?? offset;
      node = item;
    } else break;
  }
  if (offset === undefined) return {};
  const { line, col } = lineCounter.linePos(offset);
  return { line, col };
}

/** Maps the server's JSON-pointer problems (`/spec/replicas`) onto the text's lines. */
export function locateServerDetails(text: string, details: { path: string; message: string }[]): Problem[] {
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter });
  return sortProblems(
    details.map((d) => {
      // The API reports paths in the request body; its body is this manifest.
      const path = pointerToPath(d.path);
      return { path, message: d.message, ...(doc.errors.length ? {} : locate(doc, lineCounter, path)) };
    }),
  );
}

export const pointerToPath = (pointer: string): string[] =>
  pointer.split("/").slice(1).map((s) => s.replaceAll("~1", "/").replaceAll("~0", "~"));

export const describePath = (path: (string | number)[]): string => path.map(String).join(".");

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === "object" && v !== null && !Array.isArray(v);
const show = (v: unknown): string => (v === null ? "null" : typeof v === "string" ? JSON.stringify(v) : String(v));
const quoteHint = (v: unknown): string => (typeof v === "number" || typeof v === "boolean" ? `: quote it, e.g. "${String(v)}"` : v === null ? " (it is empty)" : "");
const sortProblems = (problems: Problem[]): Problem[] => [...problems].sort((a, b) => (a.line ?? 0) - (b.line ?? 0) || (a.col ?? 0) - (b.col ?? 0));
