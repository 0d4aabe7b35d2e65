/**
 * The order contenders boot in within one round: rotated by one each round, so every contender
 * boots first, second, ... equally often. On this shared host the position in a round alone moved
 * a median by ~0.5 s (bench/README.md, boot), which a fixed order would add to one contender.
 */
export function roundOrder<T>(items: readonly T[], round: number): T[] {
  if (items.length === 0) return [];
  const shift = ((round % items.length) + items.length) % items.length;
  return [...items.slice(shift), ...items.slice(0, shift)];
}
