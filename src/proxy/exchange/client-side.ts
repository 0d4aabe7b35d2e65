/**
 * The client's side of an exchange as the exchanges use it, whichever server read the request:
 * Pith's own (client/) or node's (IncomingMessage and ServerResponse satisfy the response as they
 * are; the request through nodeClientRequest).
 */

export interface ClientRequest {
  readonly method: string;
  /** The request-target as received. */
  readonly target: string;
  /** [name, value, ...] as received. */
  readonly rawHeaders: readonly string[];
  /**
   * The same fields as received (`name: value` lines separated by CRLF, no final CRLF), when the
   * server's parser checked them line by line: the proxy may forward them verbatim.
   */
  readonly fields?: string;
  /** The client's address (for X-Forwarded-For). */
  readonly remoteAddress: string | undefined;
  /**
   * Streams the body: onData per chunk (while not paused), then onEnd once it is complete. Called
   * at most once; until then nothing of the body is read beyond what one read of the socket holds.
   */
  readBody(onData: (chunk: Buffer) => void, onEnd: () => void): void;
  pause(): void;
  resume(): void;
  /** The rest of the body is not wanted: the server reads and drops it (or closes the connection). */
  discardBody(): void;
}

export interface ClientResponse {
  readonly headersSent: boolean;
  readonly statusCode: number;
  /** All of the response was handed to the connection. */
  readonly writableFinished: boolean;
  /** `headers` is [name, value, ...]; names are tokens and values hold no control characters (the caller's to ensure). */
  writeHead(status: number, reason: string | undefined, headers: string[]): unknown;
  /**
   * writeHead with `fields` (field lines as a parser checked them, `name: value` separated by CRLF,
   * no final CRLF; `fieldHeaders` the same as [name, value, ...]) sent verbatim before `headers`.
   * Optional: a server without it gets writeHead with every header.
   */
  writeHeadWithFields?(status: number, reason: string | undefined, fields: string, fieldHeaders: readonly string[], headers: readonly string[]): unknown;
  /** False when the caller should wait for 'drain'. */
  write(chunk: Buffer): boolean;
  end(chunk?: Buffer | string): unknown;
  /** Cuts the response (and its connection). */
  destroy(): unknown;
  /** 'drain': writes may go on; 'close': the response ended, or the connection closed first. */
  once(event: "drain" | "close", listener: () => void): unknown;
}
