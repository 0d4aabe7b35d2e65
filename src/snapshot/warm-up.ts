import { connect, type Socket } from "node:net";
import type { Machine } from "../hypervisor/hypervisor.ts";
import type { ImageRecord } from "../image/image.ts";
import { forwardRequest, requestHead } from "../proxy/exchange/forward-headers.ts";
import { ResponseParser } from "../proxy/upstream/response-parser.ts";

/** Requests sent on one connection before the next is opened: the first on a connection and the reused ones both get warmed. */
export const WARM_UP_REQUESTS_PER_CONNECTION = 4;
/** A request's time to answer: a whole response, not just some bytes of it (the app is not trusted to finish). */
const REQUEST_TIMEOUT_MS = 5000;

/**
 * Before a snapshot is saved, and before a warm machine is paused, the machine answers a few
 * requests. Under emulation the first requests of a fresh process are slow (lazy compilation in
 * V8; in the guest, code no one ran yet), and a restored machine would pay that on every first
 * request; after warm-up the snapshot holds the compiled code.
 *
 * The requests are the proxy's: its request head (X-Forwarded-*, X-Request-Id, built by the
 * proxy's own code) on HTTP/1.1 connections it keeps alive, a few requests each. A warm-up
 * shaped otherwise (one `Connection: close` request per connection) leaves the code that serves
 * a kept-alive, forwarded request to be compiled on the first real one (bench/README.md,
 * cold-start). Every connection is closed from this side, and its close awaited, so the saved
 * network state holds none. Returns how many requests were answered; an app that answers none
 * still gets its snapshot.
 */
export async function warmUp(machine: Pick<Machine, "ports">, image: Pick<ImageRecord, "readiness">, requests: number, requestTimeoutMs = REQUEST_TIMEOUT_MS): Promise<number> {
  const { readiness } = image;
  const port = readiness.kind === "http" ? machine.ports.find((p) => p.guestPort === readiness.port) : machine.ports[0];
  if (!port || requests <= 0) return 0;
  const path = readiness.kind === "http" ? readiness.path : "/";
  // At the forward's own address: the node's address, on a host of several (loopback otherwise).
  const host = new URL(port.url).hostname;
  let answered = 0;
  while (answered < requests) {
    const { served, cutOff } = await onOneConnection(host, port.hostPort, path, Math.min(WARM_UP_REQUESTS_PER_CONNECTION, requests - answered), requestTimeoutMs);
    answered += served;
    // It answers nothing (yet), or it stalled: a fresh connection for each request left would let
    // a guest hold the snapshot or the pool fill for every request's timeout, not one.
    if (served === 0 || cutOff) break;
  }
  return answered;
}

/** The proxy's head for a GET of `path` from a client that sent only Host, User-Agent and Accept. */
function proxiedGet(path: string, host: string): string {
  const client: [string, string][] = [["Host", host], ["User-Agent", "pith-snapshot-warm-up"], ["Accept", "*/*"]];
  const fields = client.map(([name, value]) => `${name}: ${value}`).join("\r\n");
  return requestHead("GET", path, forwardRequest({ rawHeaders: client.flat(), remoteAddress: "127.0.0.1", fields }, "http", false));
}

/**
 * Up to `count` GETs in turn on one connection, while the server keeps it; then closes it and
 * waits until it is closed. Each response must be whole within `timeoutMs` of its request (a
 * guest that trickles a body, or never closes, is cut off there). Resolves with how many got a
 * complete response, and whether the connection was cut off; never rejects.
 */
function onOneConnection(host: string, port: number, path: string, count: number, timeoutMs: number): Promise<{ served: number; cutOff: boolean }> {
  return new Promise((resolve) => {
    const socket: Socket = connect({ host, port });
    let cutOff = false;
    // From the connect on, and anew from each request: it also bounds the close after the last one.
    const deadline = setTimeout(() => {
      // A stall is a request left unanswered (or a connect never made); a slow close after the
      // last answer is not one.
      cutOff = sent === 0 || answered < sent;
      socket.destroy();
    }, timeoutMs);
    let answered = 0;
    let sent = 0;
    const parser = new ResponseParser({
      onHead: () => undefined,
      onBody: () => undefined,
      onEnd: () => {
        answered++;
        // After onEnd the parser is done; the next request may go once this feed returns.
        queueMicrotask(() => (parser.reusable && sent < count ? send() : socket.end()));
      },
    });
    const send = (): void => {
      sent++;
      parser.start("GET");
      socket.write(proxiedGet(path, `${host}:${port}`));
      deadline.refresh();
    };
    socket.once("connect", send);
    socket.on("data", (data: Buffer) => {
      try {
        parser.feed(data);
      } catch {
        socket.destroy(); // a response the proxy would refuse: what came before still counts
      }
    });
    socket.once("end", () => {
      try {
        parser.end();
      } catch {
        // closed mid-response: that one is not answered
      }
      socket.end();
    });
    socket.on("error", () => undefined);
    socket.once("close", () => {
      clearTimeout(deadline);
      resolve({ served: answered, cutOff });
    });
  });
}
