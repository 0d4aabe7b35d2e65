/**
 * What an environment handed to a machine may hold. Every value reaches the guest as one
 * `env NAME=VALUE` line on the control channel (init reads lines of at most 8 KiB, keeps at most
 * 512 variables, and buffers at most 32 KiB of them across a restore), and a manifest's env is
 * baked into the image as NUL-separated strings. So a line break, a CR or a NUL in a value would
 * split or cut it, and the sizes below keep every line, and all of them together, within init's
 * buffers with room for what Pith adds (PITH_*). The API, the manifest reader, the CLI flags and
 * the QEMU driver all check with these same rules.
 */
export const ENV_LIMITS = {
  /** Characters in a name. */
  nameLength: 128,
  /** UTF-8 bytes in one value. */
  valueBytes: 4096,
  /** Variables in one env. */
  entries: 128,
  /** UTF-8 bytes of all `NAME=VALUE` together. */
  totalBytes: 16 * 1024,
} as const;

export const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
/** Pith passes its own settings as PITH_* variables; an app's env must not shadow them. */
export const RESERVED_ENV_PREFIX = "PITH_";
/** JSON Schema spelling of "no line break, CR or NUL" (for the API's schemas). */
export const ENV_VALUE_PATTERN = "^[^\\n\\r\\u0000]*$";
const FORBIDDEN_IN_VALUE = /[\n\r\0]/;

export interface EnvProblem {
  /** The variable at fault; undefined when the env as a whole is (too many, too large). */
  name: string | undefined;
  message: string;
  hint: string;
}

/** Problems with one name; `reserved: false` where Pith's own PITH_* names are allowed (the driver). */
export function envNameProblem(name: string, options: { reserved?: boolean } = {}): EnvProblem | undefined {
  if (name.length > ENV_LIMITS.nameLength) {
    return { name, message: `the name is ${name.length} characters long (at most ${ENV_LIMITS.nameLength})`, hint: "use a shorter name" };
  }
  if (!ENV_NAME.test(name)) {
    const fixed = name.replace(/[^A-Za-z0-9_]/g, "_").replace(/^(?=\d)/, "_") || "NAME";
    return { name, message: `${JSON.stringify(name)} is not a valid environment variable name`, hint: `use letters, digits and underscores, not starting with a digit, e.g. ${fixed}` };
  }
  if ((options.reserved ?? true) && name.startsWith(RESERVED_ENV_PREFIX)) {
    return { name, message: `names starting with ${RESERVED_ENV_PREFIX} are reserved for Pith`, hint: `rename it, e.g. APP_${name.slice(RESERVED_ENV_PREFIX.length)}` };
  }
  return undefined;
}

export function envValueProblem(name: string, value: unknown): EnvProblem | undefined {
  if (typeof value !== "string") return { name, message: "the value must be a string", hint: `quote it: ${name}: "..."` };
  const match = FORBIDDEN_IN_VALUE.exec(value);
  if (match) {
    const what = match[0] === "\0" ? "a NUL character" : match[0] === "\r" ? "a carriage return" : "a line break";
    return { name, message: `the value contains ${what}`, hint: "environment values must be one line without NUL; pass longer text through a file in the image" };
  }
  const bytes = utf8Bytes(value);
  if (bytes > ENV_LIMITS.valueBytes) {
    return { name, message: `the value is ${bytes} bytes long (at most ${ENV_LIMITS.valueBytes})`, hint: "pass large values through a file in the image" };
  }
  return undefined;
}

/** Every problem with an env: each name and value, then the count and the total size. */
export function envProblems(env: Record<string, unknown>, options: { reserved?: boolean } = {}): EnvProblem[] {
  const problems: EnvProblem[] = [];
  let total = 0;
  const entries = Object.entries(env);
  for (const [name, value] of entries) {
    const problem = envNameProblem(name, options) ?? envValueProblem(name, value);
    if (problem) problems.push(problem);
    else total += utf8Bytes(name) + 1 + utf8Bytes(value as string);
  }
  if (entries.length > ENV_LIMITS.entries) {
    problems.push({ name: undefined, message: `${entries.length} variables (at most ${ENV_LIMITS.entries})`, hint: "merge related settings into fewer variables" });
  }
  if (total > ENV_LIMITS.totalBytes) {
    problems.push({ name: undefined, message: `the variables take ${total} bytes together (at most ${ENV_LIMITS.totalBytes})`, hint: "pass large settings through a file in the image" });
  }
  return problems;
}

const encoder = new TextEncoder();
/** Bytes as UTF-8, the way the guest receives them; not Buffer, since the GUI runs these rules in a browser. */
const utf8Bytes = (text: string): number => encoder.encode(text).length;
