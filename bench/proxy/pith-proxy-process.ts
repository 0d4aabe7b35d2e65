/**
 * Pith's proxy data path alone, for bench/proxy/run.ts: createProxyServer with a static route
 * table (host `bench.test` -> one backend), no control plane, no access log (as `pith proxy`).
 *
 *   node --import tsx bench/proxy/pith-proxy-process.ts --port P --backend http://127.0.0.1:B
 *
 * Prints `listening P` on stdout once it listens. With an IPC channel (spawned by run.ts) it also
 * takes { profile: "start" } and { profile: "stop", file } and answers { profiled: summary }:
 * a V8 CPU profile of just the load, not of the start.
 */
import { parseArgs } from "node:util";
import { createProxyServer } from "../../src/proxy/proxy-server.ts";
import { type CpuProfiler, startCpuProfile } from "./profile.ts";
import { staticRoutes } from "./static-routes.ts";

const { values } = parseArgs({
  options: {
    port: { type: "string" },
    backend: { type: "string" },
    host: { type: "string", default: "bench.test" },
  },
});
if (!values.port || !values.backend) {
  process.stderr.write("usage: pith-proxy-process.ts --port P --backend URL [--host bench.test]\n");
  process.exit(2);
}

const server = createProxyServer({ routes: staticRoutes(values.backend, values.host) });
server.listen(Number(values.port), "127.0.0.1", () => {
  process.stdout.write(`listening ${values.port}\n`);
});

let profiler: CpuProfiler | undefined;
process.on("message", (message: { profile?: "start" | "stop"; file?: string }) => {
  void (async () => {
    if (message.profile === "start" && !profiler) {
      profiler = await startCpuProfile();
      process.send?.({ profiling: true });
    } else if (message.profile === "stop" && profiler && message.file) {
      const summary = await profiler.stop(message.file);
      profiler = undefined;
      process.send?.({ profiled: summary });
    }
  })().catch((e: unknown) => process.send?.({ error: String(e) }));
});

// A clean exit on SIGTERM (so --cpu-prof, when given, can write its file) and when run.ts goes.
const stop = (): void => {
  server.closeAllConnections();
  server.close();
  process.exit(0);
};
process.on("SIGTERM", stop);
process.on("SIGINT", stop);
process.on("disconnect", stop);
