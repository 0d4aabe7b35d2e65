/**
 * The glob patterns of `files:` in pith.yaml, matched component by component against paths
 * relative to the app directory: `*` is any run of characters within one name, `?` one
 * character, and a `**` component any number of directories (none included). Nothing else is
 * special, so a name like `[draft].txt` is matched literally. `*` also matches names starting
 * with a dot: what a pattern names is shipped, hidden or not.
 */
export const hasGlob = (pattern: string): boolean => /[*?]/.test(pattern);

/** The leading components without wildcards: the directory a walk for `pattern` starts from. */
export function globBase(pattern: string): string {
  const parts = pattern.split("/");
  const firstWild = parts.findIndex(hasGlob);
  return (firstWild === -1 ? parts : parts.slice(0, firstWild)).join("/");
}

/** Does the relative path `path` match `pattern`? */
export function globMatches(pattern: string, path: string): boolean {
  return matchParts(compile(pattern), path.split("/"), false);
}

/**
 * Could a path below the directory `dir` match `pattern`? A walk descends only where it can,
 * so a symlink or special file elsewhere in the app never matters to a pattern.
 */
export function globCouldMatchBelow(pattern: string, dir: string): boolean {
  return dir === "" || matchParts(compile(pattern), dir.split("/"), true);
}

type Part = "**" | RegExp;

/** A walk asks about every entry it meets, so each pattern is compiled once. */
const compiled = new Map<string, Part[]>();

function compile(pattern: string): Part[] {
  let parts = compiled.get(pattern);
  if (!parts) {
    parts = pattern.split("/").map((part) => (part === "**" ? "**" : componentRegExp(part)));
    if (compiled.size > 1000) compiled.clear();
    compiled.set(pattern, parts);
  }
  return parts;
}

function componentRegExp(part: string): RegExp {
  const body = [...part].map((c) => (c === "*" ? ".*" : c === "?" ? "." : c.replace(/[\\^$.+()|[\]{}]/g, "\\$&"))).join("");
  return new RegExp(`^${body}$`, "s");
}

/**
 * With `prefix`, `path` may stop early: it only has to be the start of a matching path. Each
 * (pattern position, path position) pair is decided once, so a pattern with several `**` costs
 * at most their product, never an exponential search.
 */
function matchParts(pattern: Part[], path: string[], prefix: boolean): boolean {
  const memo = new Map<number, boolean>();
  const match = (p: number, s: number): boolean => {
    const key = p * (path.length + 1) + s;
    let result = memo.get(key);
    if (result !== undefined) return result;
    if (s === path.length) result = prefix || pattern.slice(p).every((part) => part === "**");
    else if (p === pattern.length) result = false;
    else if (pattern[p] === "**") result = match(p + 1, s) || match(p, s + 1);
    else result = (pattern[p] as RegExp).test(path[s]!) && match(p + 1, s + 1);
    memo.set(key, result);
    return result;
  };
  return match(0, 0);
}
