import fc from "fast-check";

/** What the two HTTP parsers' property tests share: the inputs they are fed, and how reads are cut. */

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

/**
 * Bytes for a parser's properties: messages joined from `part`s (at most `maxParts`), random
 * bytes, and messages with random bytes put in at a random place.
 */
export function messageBytes(part: fc.Arbitrary<string>, maxParts: number): fc.Arbitrary<Buffer> {
  return fc.oneof(
    fc.array(part, { maxLength: maxParts }).map((parts) => Buffer.from(parts.join(""), "latin1")),
    fc.uint8Array({ maxLength: 300 }).map((a) => Buffer.from(a)),
    fc.tuple(fc.array(part, { maxLength: maxParts - 4 }), fc.uint8Array({ maxLength: 20 }), fc.nat()).map(([parts, noise, at]) => {
      const text = Buffer.from(parts.join(""), "latin1");
      const i = at % (text.length + 1);
      return Buffer.concat([text.subarray(0, i), Buffer.from(noise), text.subarray(i)]);
    }),
  );
}
