/**
 * Pith's HAProxy data path, for bench/proxy/run.ts: HAProxy (nbthread 1, as the haproxy contender)
 * driven by Pith's HaproxyEngine, with Pith's node proxy behind it as the fallback, and a static
 * route table (host `bench.test` -> one backend), no control plane (as `pith proxy --engine haproxy`).
 *
 *   node --import tsx bench/proxy/pith-haproxy-process.ts --port P --backend http://127.0.0.1:B
 *
 * Prints `listening P` once HAProxy serves the host itself (one request through the fallback
 * teaches it the host, as in production). HAProxy goes when this process does.
 */
import { request } from "node:http";
import { parseArgs } from "node:util";
import { HaproxyEngine } from "../../src/proxy/haproxy/haproxy-engine.ts";
import { staticRoutes } from "./static-routes.ts";

const { values } = parseArgs({
  options: {
    port: { type: "string" },
    backend: { type: "string" },
    host: { type: "string", default: "bench.test" },
    threads: { type: "string", default: "1" },
  },
});
if (!values.port || !values.backend) {
  process.stderr.write("usage: pith-haproxy-process.ts --port P --backend URL [--host bench.test] [--threads 1]\n");
  process.exit(2);
}

const routes = staticRoutes(values.backend, values.host);
const engine = new HaproxyEngine({ routes, server: {}, onError: (e) => process.stderr.write(`pith-haproxy: ${String(e)}\n`), threads: Number(values.threads) });
await engine.listen("127.0.0.1", Number(values.port));
await new Promise<void>((resolve, reject) => {
  const req = request({ host: "127.0.0.1", port: Number(values.port), path: "/", headers: { host: values.host }, agent: false }, (res) => {
    res.resume().on("end", () => resolve());
  });
  req.on("error", reject);
  req.end();
});
await engine.settled();
process.stdout.write(`listening ${values.port}\n`);

let stopping = false;
const stop = (): void => {
  if (stopping) return;
  stopping = true;
  void engine.close().finally(() => process.exit(0));
};
process.on("SIGTERM", stop);
process.on("SIGINT", stop);
