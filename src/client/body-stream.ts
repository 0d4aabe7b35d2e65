/**
 * Reading streamed response bodies: the console as text, watches as NDJSON. Both read through a
 * reader (not `for await` on the stream) so an abort or a cut connection surfaces as a rejected
 * read, and the reader is always released.
 */
export async function* textChunks(body: ReadableStream<Uint8Array>): AsyncGenerator<string> {
  const reader = body.getReader();
  const decoder = new TextDecoder();
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      const text = decoder.decode(value, { stream: true });
      if (text) yield text;
    }
    const rest = decoder.decode();
    if (rest) yield rest;
  } finally {
    await reader.cancel().catch(() => {});
  }
}

/**
 * Complete lines of an NDJSON stream, without their newline; blank lines are skipped. A last line
 * without its newline is dropped: when a connection is cut mid-line the fragment is not a message
 * (a watch resumes from the last complete one, so nothing is lost).
 */
export async function* ndjsonLines(body: ReadableStream<Uint8Array>): AsyncGenerator<string> {
  let pending = "";
  for await (const chunk of textChunks(body)) {
    pending += chunk;
    let newline: number;
    while ((newline = pending.indexOf("\n")) >= 0) {
      const line = pending.slice(0, newline).trim();
      pending = pending.slice(newline + 1);
      if (line) yield line;
    }
  }
}
