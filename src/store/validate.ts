import { KINDS, type Kind, type ResourceInput } from "../model/resource.ts";
import { StoreError } from "./store.ts";

/** DNS-subdomain-like names: they end up in host names, file names and URL paths. */
const NAME = /^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$/;
/**
 * An object as stored (its JSON): every write is kept, watched and listed whole, so one object
 * must stay small. Pith's own are a few KiB.
 */
export const MAX_OBJECT_BYTES = 256 * 1024;
/** Revisions are positive decimal integers; "0" means "before the first write". */
const REVISION = /^(0|[1-9][0-9]{0,15})$/;

export function validateKind(kind: unknown): asserts kind is Kind {
  if (!(KINDS as readonly unknown[]).includes(kind)) {
    throw new StoreError("Invalid", `kind ${JSON.stringify(kind)} is not one of ${KINDS.join(", ")}`);
  }
}

export function validateName(kind: Kind, name: unknown): asserts name is string {
  if (typeof name !== "string" || !NAME.test(name)) {
    throw new StoreError(
      "Invalid",
      `${kind} name ${JSON.stringify(name)} is invalid: use 1-253 lower-case letters, digits, '-' or '.', starting and ending with a letter or digit`,
    );
  }
}

/** Parses a resourceVersion / revision string; `what` names it in the error message. */
export function parseRevision(value: string, what: string): number {
  if (typeof value !== "string" || !REVISION.test(value)) {
    throw new StoreError("Invalid", `${what} ${JSON.stringify(value)} is not a revision (a non-negative decimal integer)`);
  }
  return Number(value);
}

/** The minimal checks every write input gets before it reaches a backend. */
export function validateInput(input: ResourceInput): void {
  validateInputShape(input);
  checkObjectSize(input.kind, input.metadata.name, JSON.stringify({ spec: input.spec, status: input.status, labels: input.metadata.labels }));
}

/**
 * validateInput without the size: for a backend that checks the size on the JSON it stores
 * (checkObjectSize), so an object is serialized once per write, not twice.
 */
export function validateInputShape(input: ResourceInput): void {
  if (input === null || typeof input !== "object") throw new StoreError("Invalid", "an object is required");
  validateKind(input.kind);
  if (input.metadata === null || typeof input.metadata !== "object") {
    throw new StoreError("Invalid", `${input.kind} has no metadata`);
  }
  validateName(input.kind, input.metadata.name);
  const labels = input.metadata.labels;
  if (labels !== undefined) {
    if (labels === null || typeof labels !== "object" || Array.isArray(labels)) {
      throw new StoreError("Invalid", `${input.kind} ${input.metadata.name}: labels must be an object of strings`);
    }
    for (const [key, value] of Object.entries(labels)) {
      if (typeof value !== "string") {
        throw new StoreError("Invalid", `${input.kind} ${input.metadata.name}: label ${JSON.stringify(key)} must be a string`);
      }
    }
  }
  if (input.spec === undefined) throw new StoreError("Invalid", `${input.kind} ${input.metadata.name} has no spec`);
  if (input.metadata.resourceVersion !== undefined) parseRevision(input.metadata.resourceVersion, "metadata.resourceVersion");
}

/** An object's JSON must fit MAX_OBJECT_BYTES (UTF-8 is at most 3 bytes per UTF-16 unit: short ones are not counted). */
export function checkObjectSize(kind: Kind, name: string, json: string): void {
  if (json.length * 3 <= MAX_OBJECT_BYTES) return;
  const bytes = Buffer.byteLength(json);
  if (bytes > MAX_OBJECT_BYTES) {
    throw new StoreError("Invalid", `${kind} ${name} is ${bytes} bytes as JSON (at most ${MAX_OBJECT_BYTES}): keep large data out of objects`);
  }
}
