/**
 * A reference for bench/proxy/run.ts, not a contender with a target: the textbook node reverse
 * proxy (http.createServer, http.request on a keep-alive Agent, pipe both ways, Host check,
 * X-Forwarded-For), nothing else. Pith's proxy against this shows what Pith's own code costs on
 * top of node's HTTP stack; this against HAProxy shows what node's HTTP stack costs.
 *
 *   node bench/proxy/node-bare-proxy.ts --port P --backend http://127.0.0.1:B   (prints `listening P`)
 */
import { Agent, createServer, request } from "node:http";
import { parseArgs } from "node:util";

const { values } = parseArgs({ options: { port: { type: "string" }, backend: { type: "string" }, host: { type: "string", default: "bench.test" } } });
if (!values.port || !values.backend) {
  process.stderr.write("usage: node-bare-proxy.ts --port P --backend URL [--host bench.test]\n");
  process.exit(2);
}
const target = new URL(values.backend);
const agent = new Agent({ keepAlive: true, maxSockets: 256 });
const routeHost = values.host;

const server = createServer((req, res) => {
  if ((req.headers.host ?? "").split(":")[0]?.toLowerCase() !== routeHost) {
    res.writeHead(404).end();
    return;
  }
  const forwardedFor = req.headers["x-forwarded-for"];
  const remote = req.socket.remoteAddress ?? "unknown";
  const upstream = request(
    {
      agent,
      host: target.hostname,
      port: target.port,
      method: req.method,
      path: req.url,
      headers: { ...req.headers, "x-forwarded-for": forwardedFor ? `${forwardedFor}, ${remote}` : remote },
    },
    (upstreamRes) => {
      res.writeHead(upstreamRes.statusCode ?? 502, upstreamRes.headers);
      upstreamRes.pipe(res);
    },
  );
  upstream.on("error", () => {
    if (!res.headersSent) res.writeHead(502);
    res.end();
  });
  req.pipe(upstream);
});
server.listen(Number(values.port), "127.0.0.1", () => process.stdout.write(`listening ${values.port}\n`));

const stop = (): void => {
  server.closeAllConnections();
  server.close();
  process.exit(0);
};
process.on("SIGTERM", stop);
process.on("SIGINT", stop);
