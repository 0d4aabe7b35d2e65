import { isMap, isScalar, isSeq, LineCounter, parseDocument, stringify, type Document } from "yaml";
import { ValueErrorType } from "@sinclair/typebox/errors";
import { KIND_SCHEMAS } from "../../api/schemas/kinds.ts";
import { schemaProblems, type SchemaProblem } from "../../api/schemas/problems.ts";
import { API_VERSION, type Service, type ServiceSpec } from "./types.ts";

/**
 * The service manifest editor's model: a Service as YAML, and every problem with an edited
 * manifest found before it is sent: YAML syntax, then the API's own schema and rules for a
 * Service (api/schemas, the very objects the server validates with), each problem placed on
 * its line. The server has the last word; its 400 details are mapped back to lines as well.
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
  metadata: { name: string; labels?: Record<string, string>; resourceVersion?: string };
  spec: ServiceSpec;
}

export interface CheckResult {
  manifest?: ServiceManifest;
  problems: Problem[];
}

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
  const value = doc.toJS() as unknown;
  // The API's own schema and rules for a Service body, then what only this editor adds.
  const found = schemaProblems(SERVICE_INPUT, value).map((p) => ({ path: pointerToPath(p.path), message: p.message + quoteHint(p), key: p.key }));
  if (isObject(value)) {
    const name = isObject(value.metadata) ? value.metadata.name : undefined;
    // A missing or non-string name is the schema's to report.
    if (typeof name === "string" && name !== expectedName) {
      found.push({ path: ["metadata", "name"], message: `must stay ${JSON.stringify(expectedName)}: a service cannot be renamed (create a new one and delete this one instead)`, key: false });
    }
    if (value.status !== undefined) found.push({ path: ["status"], message: "is the control plane's to write: remove it", key: true });
  }
  const problems = found.map(({ path, message, key }) => ({ path, message, ...locate(doc, lineCounter, path, key) }));
  if (problems.length > 0) return { problems: sortProblems(problems) };
  return { manifest: value as ServiceManifest, problems: [] };
}

const SERVICE_INPUT = KIND_SCHEMAS.Service.input;

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

/** YAML reads `8080`, `true` and an empty value as a number, a boolean and null: where a string is due, say how to write one. */
function quoteHint({ type, value }: SchemaProblem): string {
  // A union (an env value: a string, or a secretRef) reports its own type error.
  if (type !== ValueErrorType.String && type !== ValueErrorType.Union) return "";
  if (typeof value === "number" || typeof value === "boolean") return `: quote it, e.g. "${String(value)}"`;
  return value === null ? " (it is empty)" : "";
}
const sortProblems = (problems: Problem[]): Problem[] => [...problems].sort((a, b) => (a.line ?? 0) - (b.line ?? 0) || (a.col ?? 0) - (b.col ?? 0));
