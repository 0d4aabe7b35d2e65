/**
 * The HTTP/1.1 head grammar both of the proxy's parsers share (RFC 9112 2.2, 5; RFC 9110 5.5-5.6):
 * the client side's request parser and the upstream side's response parser read field lines by
 * the same rules, so a head one side accepts the other cannot read differently.
 */

/** The same limit as node's http parser (--max-http-header-size): start line and fields, and trailers. */
export const MAX_HEAD_BYTES = 16 * 1024;

/** tchar (RFC 9110 5.6.2), by latin1 code: what a field name and a method are made of. */
export const TCHAR = new Uint8Array(256);
for (const c of "!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz") TCHAR[c.charCodeAt(0)] = 1;

/** Makes the parser's own error type from a message. */
export type HeadError = (message: string) => Error;

/**
 * Checks the field lines of `text` from `at` (`name: value` separated by CRLF, no final CRLF) and
 * appends [name, value, ...] to `into`, values without the surrounding whitespace. `where` names
 * the section in errors. A line starting with whitespace (obs-fold), a name with a character
 * outside tchar or whitespace before its colon, and any control character but HTAB in a value
 * (bare CR and LF among them) are errors. Returns the number of fields read.
 */
export function scanFields(text: string, at: number, into: string[], where: string, error: HeadError): number {
  const n = text.length;
  let count = 0;
  while (at < n) {
    let end = text.indexOf("\r\n", at);
    if (end < 0) end = n;
    let i = at;
    while (i < end && TCHAR[text.charCodeAt(i)] === 1) i++;
    if (i === end || i === at || text.charCodeAt(i) !== 58 /* : */) throw fieldError(text.slice(at, end), i - at, error);
    const name = text.slice(at, i);
    i++;
    while (i < end && isWhitespace(text.charCodeAt(i))) i++;
    let valueEnd = end;
    while (valueEnd > i && isWhitespace(text.charCodeAt(valueEnd - 1))) valueEnd--;
    checkControl(text, i, valueEnd, where, error);
    into.push(name, i === valueEnd ? "" : text.slice(i, valueEnd));
    count++;
    at = end + 2;
  }
  return count;
}

/** Characters other than HTAB below 0x20, and DEL, have no place in a head: bare CRs and LFs among them. */
export function checkControl(text: string, from: number, to: number, where: string, error: HeadError): void {
  for (let k = from; k < to; k++) {
    const c = text.charCodeAt(k);
    if ((c < 32 && c !== 9) || c === 127) throw error(`a control character (0x${c.toString(16).padStart(2, "0")}) in ${where}`);
  }
}

function fieldError(line: string, nameLength: number, error: HeadError): Error {
  const first = line.charCodeAt(0);
  const shown = JSON.stringify(line.slice(0, 80));
  if (first === 32 || first === 9) return error(`obsolete line folding: ${shown}`);
  if (nameLength === line.length) return error(`a header line without a colon: ${shown}`);
  if (nameLength === 0 && first === 58) return error(`a header line without a name: ${shown}`);
  return error(`invalid header name: ${shown}`);
}

export const isWhitespace = (c: number): boolean => c === 32 || c === 9;

/** The comma-separated tokens of a list field (Connection, Transfer-Encoding), trimmed and lower-cased, empty ones dropped. */
export function listTokens(value: string): string[] {
  const tokens: string[] = [];
  for (const part of value.split(",")) {
    const token = part.trim().toLowerCase();
    if (token !== "") tokens.push(token);
  }
  return tokens;
}
