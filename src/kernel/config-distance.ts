/**
 * How far apart two kernel configurations are: the number of CONFIG_ symbols whose value differs,
 * a symbol absent or "is not set" counting as n. Kbuild rebuilds an object when a symbol it
 * depends on changes, so the nearest configuration's build tree leaves the fewest objects to compile.
 */
export function configSymbols(config: string): Map<string, string> {
  const symbols = new Map<string, string>();
  for (const line of config.split("\n")) {
    const set = /^CONFIG_([A-Za-z0-9_]+)=(.*)$/.exec(line);
    if (set) {
      symbols.set(set[1]!, set[2]!);
      continue;
    }
    const unset = /^# CONFIG_([A-Za-z0-9_]+) is not set$/.exec(line);
    if (unset) symbols.set(unset[1]!, "n");
  }
  return symbols;
}

export function configDistance(a: string, b: string): number {
  const left = configSymbols(a);
  const right = configSymbols(b);
  let differing = 0;
  for (const name of new Set([...left.keys(), ...right.keys()])) {
    if ((left.get(name) ?? "n") !== (right.get(name) ?? "n")) differing++;
  }
  return differing;
}
