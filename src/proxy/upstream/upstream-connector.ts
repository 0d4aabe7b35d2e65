import { connect } from "node:net";
import type { Duplex } from "node:stream";

/** Where an upstream connection goes: the machine (for connectors that route by name) and its forwarded address. */
export interface UpstreamTarget {
  machine: string;
  hostname: string;
  port: number;
}

/**
 * How the proxy reaches a machine. The proxy opens every upstream connection (HTTP and upgrade
 * tunnels) through one, so a proxy that cannot dial machines directly (one running inside a VM,
 * say) can plug in another way there.
 *
 * The returned duplex behaves like a net.Socket that is connecting: it emits 'connect' once bytes
 * can flow, 'error' if it cannot get there (a `code` of ECONNREFUSED counts as refused), and
 * 'close' after either. It must not emit 'connect' after the proxy destroyed it.
 */
export interface UpstreamConnector {
  /**
   * With `reader`, a connector that can may hand what it reads to `reader` instead of emitting
   * 'data' (net's `onread`: into one reused buffer, past the stream machinery); one that cannot
   * ignores it and emits 'data' as usual.
   */
  connect(target: UpstreamTarget, reader?: UpstreamReader): Duplex;
}

/**
 * Where a connection's reads go when its connector reads directly: `buffer` is reused for every
 * read (of every connection that shares it), so `onRead`'s bytes are valid only during the call.
 */
export interface UpstreamReader {
  readonly buffer: Buffer;
  onRead(bytes: Buffer): void;
}

/** TCP straight to the machine's forwarded port; reads go to the reader, when there is one. */
export const directConnector: UpstreamConnector = {
  connect: ({ hostname, port }, reader) =>
    connect({
      host: hostname,
      port,
      noDelay: true,
      ...(reader && {
        onread: {
          buffer: reader.buffer,
          callback: (length: number, buffer: Uint8Array): boolean => {
            reader.onRead((buffer as Buffer).subarray(0, length));
            return true; // flow control is the connection's pause() and resume(), which net honours with onread too
          },
        },
      }),
    }),
};
