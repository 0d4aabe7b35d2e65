/**
 * For the parsers' properties: the same bytes cut into reads at the given offsets (taken modulo
 * the length, duplicates and empty reads dropped), as a socket might deliver them.
 */
export function splitReads(bytes: Buffer, cuts: number[]): Buffer[] {
  const points = [...new Set(cuts.map((c) => c % (bytes.length + 1)))].sort((a, b) => a - b);
  const pieces: Buffer[] = [];
  let from = 0;
  for (const p of points) {
    pieces.push(bytes.subarray(from, p));
    from = p;
  }
  pieces.push(bytes.subarray(from));
  return pieces.filter((p) => p.length > 0);
}
