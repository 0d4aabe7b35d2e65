/** The bytes HTTP/1.1's framing is made of (RFC 9112), shared by the request and response parsers. */
export const CR = 13;
export const LF = 10;
/** Ends a head (and a trailer section). */
export const CRLFCRLF = Buffer.from("\r\n\r\n", "latin1");
/**
 * Ends a line. The parsers also keep this very object as the pending bytes after the last chunk's
 * size line (compared by identity), since the trailer section that follows ends at the first CRLFCRLF.
 */
export const CRLF = Buffer.from("\r\n", "latin1");
