import type { Ctx } from "./context.ts";
import { readString, type Entry } from "./read.ts";

/** The name becomes a hostname and part of image file names, hence DNS-label rules. */
export const APP_NAME_PATTERN = "^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$";
const DNS_LABEL = new RegExp(APP_NAME_PATTERN);

export function readName(ctx: Ctx, field: Entry | undefined): string | undefined {
  if (!field) {
    ctx.report(undefined, "name", "required field is missing", "add a line like: name: my-app");
    return undefined;
  }
  const name = readString(ctx, field.value, field.at, "a name like \"my-app\"");
  if (name === undefined || DNS_LABEL.test(name)) return name;
  ctx.report(field.value, field.at, `"${name}" is not a valid name`,
    `use at most 63 lowercase letters, digits and dashes, starting and ending with a letter or digit, e.g. "${slug(name)}"`);
  return undefined;
}

function slug(name: string): string {
  const s = name.toLowerCase().replace(/[^a-z0-9]+/g, "-").slice(0, 63).replace(/^-+|-+$/g, "");
  return s || "my-app";
}
