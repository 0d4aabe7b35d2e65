import { existsSync } from "node:fs";
import path from "node:path";
import { isMap, isSeq, LineCounter, parseAllDocuments, type Document, type YAMLMap } from "yaml";
import { API_VERSION, KINDS, type Kind, type ResourceInput } from "../model/resource.ts";
import { closest } from "../manifest/suggest.ts";
import { PithError } from "../shared/errors.ts";

/**
 * Resource documents as a person writes them for `pith apply` / `pith delete -f`: YAML or JSON,
 * several per file (`---`), each `apiVersion: pith.dev/v1`, kind, metadata, spec. A `List` (or a
 * JSON array), as `pith get -o yaml|json` prints, is taken item by item. Everything is checked
 * before anything is returned, so a caller can refuse to apply a file with any mistake in it.
 */
export interface ResourceDocument {
  /** 1-based position of the document in the file; `item` (1-based) inside a List or array. */
  index: number;
  item?: number;
  /** 1-based line where the object starts. */
  line: number;
  /** What to send: metadata reduced to name and labels, without status. */
  input: ResourceInput;
  /** A Service's `spec.app`, resolved against the file's directory (and removed from input.spec). */
  app?: string;
}

export interface DocumentProblem {
  file: string;
  index: number;
  item?: number;
  line: number;
  message: string;
  hint?: string;
}

export function formatDocumentProblem(p: DocumentProblem): string {
  const where = `${p.file}: document ${p.index}${p.item !== undefined ? `, item ${p.item}` : ""} (line ${p.line})`;
  return `${where}: ${p.message}${p.hint ? `\n  fix: ${p.hint}` : ""}`;
}

/** Every problem in a file, reported together; nothing in the file should be applied. */
export class DocumentsError extends PithError {
  readonly problems: readonly DocumentProblem[];

  constructor(problems: DocumentProblem[], file: string) {
    super("DOCUMENTS_INVALID", "user", problems.length ? problems.map(formatDocumentProblem).join("\n") : `${file}: no documents`,
      problems.length ? undefined : "write at least one object: apiVersion: pith.dev/v1, kind, metadata.name, spec");
    this.name = "DocumentsError";
    this.problems = problems;
  }
}

const NAME = /^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$/;
const KIND_HINT = `kind is one of ${KINDS.join(", ")}`;

export interface ParseOptions {
  /** Anchors relative `spec.app` paths; default the file's directory. */
  baseDir?: string;
  /** Check that each `spec.app` directory exists (default true; `delete -f` needs no app). */
  checkApps?: boolean;
}

/**
 * Parses and checks a file's documents. `file` names it in problems ("<stdin>" for stdin).
 * Throws DocumentsError listing every problem (file, document index, line) if there is any.
 */
export function parseResourceDocuments(text: string, file: string, options: ParseOptions = {}): ResourceDocument[] {
  const baseDir = options.baseDir ?? path.dirname(file);
  const checkApps = options.checkApps ?? true;
  const lines = new LineCounter();
  const docs = parseAllDocuments(text, { lineCounter: lines, prettyErrors: false });
  const problems: DocumentProblem[] = [];
  const results: ResourceDocument[] = [];
  const lineAt = (offset: number | undefined): number => lines.linePos(offset ?? 0).line;

  (Array.isArray(docs) ? docs : []).forEach((doc: Document, i) => {
    const index = i + 1;
    const docLine = lineAt(doc.contents?.range?.[0] ?? doc.range?.[0]);
    if (doc.errors.length) {
      const lines = new Set<number>(); // one error per line: the parser often reports a slip twice
      for (const error of doc.errors) {
        const line = lineAt(error.pos[0]);
        if (lines.has(line)) continue;
        lines.add(line);
        problems.push({ file, index, line, message: `YAML syntax error: ${firstLine(error.message)}`, hint: "check the indentation, quotes and brackets on this line and the ones above it" });
      }
      return;
    }
    const root = doc.contents;
    if (root === null || (!isMap(root) && !isSeq(root) && doc.toJS() == null)) return; // an empty document (e.g. a trailing ---)
    const value: unknown = doc.toJS();
    if (isSeq(root) && Array.isArray(value)) {
      root.items.forEach((node, j) => checkObject(value[j], { file, index, item: j + 1, line: lineAt(rangeStart(node) ?? root.range?.[0]) }, node));
    } else if (isMap(root) && isList(value)) {
      const items = root.get("items", true);
      (value.items as unknown[]).forEach((item, j) => {
        const node = isSeq(items) ? items.items[j] : undefined;
        checkObject(item, { file, index, item: j + 1, line: lineAt(rangeStart(node) ?? docLine) }, node);
      });
    } else {
      checkObject(value, { file, index, line: docLine }, root);
    }
  });

  function checkObject(value: unknown, at: Omit<DocumentProblem, "message">, node: unknown): void {
    const report = (message: string, hint?: string, key?: string) => {
      const keyLine = key !== undefined ? lineOfKey(node, key, lineAt) : undefined;
      problems.push({ ...at, line: keyLine ?? at.line, message, ...(hint ? { hint } : {}) });
    };
    const checked = checkResource(value, report, baseDir, checkApps);
    if (checked) results.push({ index: at.index, ...(at.item !== undefined ? { item: at.item } : {}), line: at.line, ...checked });
  }

  if (problems.length === 0) checkDuplicates(results, file, problems);
  if (problems.length || results.length === 0) throw new DocumentsError(problems, file);
  return results;
}

type Report = (message: string, hint?: string, key?: string) => void;

/** The checks for one object; reports each problem and returns undefined if there was any. */
function checkResource(value: unknown, report: Report, baseDir: string, checkApps: boolean): Omit<ResourceDocument, "index" | "item" | "line"> | undefined {
  if (!isRecord(value)) {
    report("expected an object with apiVersion, kind, metadata and spec", "start the document with apiVersion: pith.dev/v1");
    return undefined;
  }
  let ok = true;
  const fail: Report = (message, hint, key) => {
    ok = false;
    report(message, hint, key);
  };
  if (value.apiVersion === undefined) fail("apiVersion is missing", `add apiVersion: ${API_VERSION}`);
  else if (value.apiVersion !== API_VERSION) fail(`apiVersion ${JSON.stringify(value.apiVersion)} is not supported`, `use apiVersion: ${API_VERSION}`, "apiVersion");

  const kind = checkKind(value.kind, fail);
  const metadata = isRecord(value.metadata) ? value.metadata : undefined;
  const name = metadata?.name;
  if (value.metadata !== undefined && !metadata) fail("metadata must be a mapping", "e.g. metadata: { name: web }", "metadata");
  else if (name === undefined || name === null || name === "") fail("metadata.name is missing", "add metadata: { name: <name> }", "metadata");
  else if (typeof name !== "string" || !NAME.test(name)) {
    fail(`metadata.name ${JSON.stringify(name)} is invalid`, "use 1-253 lower-case letters, digits, '-' or '.', starting and ending with a letter or digit", "metadata");
  }
  const labels = metadata?.labels;
  if (labels !== undefined && (!isRecord(labels) || Object.values(labels).some((v) => typeof v !== "string"))) {
    fail("metadata.labels must map names to strings", 'quote values that look like numbers or booleans, e.g. tier: "1"', "metadata");
  }
  const spec = value.spec;
  if (spec === undefined || spec === null) fail("spec is missing", "add the spec: what you want this object to be");
  else if (!isRecord(spec)) fail("spec must be a mapping", undefined, "spec");

  let app: string | undefined;
  if (ok && kind === "Service" && isRecord(spec)) app = checkServiceSource(spec, fail, baseDir, checkApps);
  if (!ok || !kind || typeof name !== "string" || !isRecord(spec)) return undefined;

  const { app: _app, ...sentSpec } = spec;
  const input: ResourceInput = {
    apiVersion: API_VERSION,
    kind,
    metadata: { name, ...(isRecord(labels) ? { labels: labels as Record<string, string> } : {}) },
    spec: kind === "Service" ? sentSpec : spec,
  };
  return { input, ...(app !== undefined ? { app } : {}) };
}

function checkKind(kind: unknown, fail: Report): Kind | undefined {
  if (kind === undefined || kind === null || kind === "") {
    fail("kind is missing", KIND_HINT);
    return undefined;
  }
  if ((KINDS as readonly unknown[]).includes(kind)) return kind as Kind;
  const near = typeof kind === "string" ? closest(kind.replace(/s$/, ""), KINDS) : undefined;
  fail(`unknown kind ${JSON.stringify(kind)}`, near ? `did you mean kind: ${near}? (${KIND_HINT})` : KIND_HINT, "kind");
  return undefined;
}

/** A Service runs `spec.image`, or `spec.app`: an app directory `pith apply` builds first. */
function checkServiceSource(spec: Record<string, unknown>, fail: Report, baseDir: string, checkApps: boolean): string | undefined {
  const { image, app } = spec;
  if (image !== undefined && app !== undefined) {
    fail("spec.image and spec.app are both set", "keep one: image (a built image's name or digest) or app (a directory to build)", "spec");
    return undefined;
  }
  if (app === undefined) {
    if (image === undefined || image === "") fail("spec.image is missing", "set spec.image to an image name or digest, or spec.app to an app directory to build", "spec");
    return undefined;
  }
  if (typeof app !== "string" || app === "") {
    fail("spec.app must be a path to an app directory", "e.g. app: ./hello", "spec");
    return undefined;
  }
  const dir = path.resolve(baseDir, app);
  if (checkApps && !existsSync(dir)) {
    fail(`spec.app: ${dir} does not exist`, "spec.app is relative to the file's directory", "spec");
    return undefined;
  }
  return dir;
}

function checkDuplicates(results: ResourceDocument[], file: string, problems: DocumentProblem[]): void {
  const seen = new Map<string, ResourceDocument>();
  for (const doc of results) {
    const key = `${doc.input.kind}/${doc.input.metadata.name}`;
    const first = seen.get(key);
    if (first) {
      problems.push({ file, index: doc.index, ...(doc.item !== undefined ? { item: doc.item } : {}), line: doc.line, message: `${key} is already defined in document ${first.index} (line ${first.line})`, hint: "remove or rename one of them" });
    } else {
      seen.set(key, doc);
    }
  }
}

const isRecord = (v: unknown): v is Record<string, unknown> => typeof v === "object" && v !== null && !Array.isArray(v);
const isList = (v: unknown): v is { items: unknown[] } => isRecord(v) && typeof v.kind === "string" && v.kind.endsWith("List") && Array.isArray(v.items);
const firstLine = (message: string): string => message.split("\n")[0]!;

function rangeStart(node: unknown): number | undefined {
  const range = isRecord(node) ? node.range : undefined;
  return Array.isArray(range) && typeof range[0] === "number" ? range[0] : undefined;
}

/** The line of `key`'s value in a mapping node, if the node has it. */
function lineOfKey(node: unknown, key: string, lineAt: (offset: number | undefined) => number): number | undefined {
  if (!isMap(node)) return undefined;
  const value = (node as YAMLMap).get(key, true);
  const start = rangeStart(value);
  return start === undefined ? undefined : lineAt(start);
}
