/**
 * A reference for bench/proxy/run.ts, not a contender with a target: a node TCP pass-through
 * (each client connection gets its own backend connection, bytes piped both ways, no HTTP
 * parsing, no routing). What node itself costs per request when the HTTP stack is left out: an
 * upper bound for any proxy written on node's sockets.
 *
 *   node bench/proxy/node-tcp-proxy.ts --port P --backend http://127.0.0.1:B   (prints `listening P`)
 */
import { connect, createServer } from "node:net";
import { parseArgs } from "node:util";

const { values } = parseArgs({ options: { port: { type: "string" }, backend: { type: "string" }, host: { type: "string" } } });
if (!values.port || !values.backend) {
  process.stderr.write("usage: node-tcp-proxy.ts --port P --backend URL\n");
  process.exit(2);
}
const target = new URL(values.backend);

const server = createServer((client) => {
  client.setNoDelay(true);
  const upstream = connect({ host: target.hostname, port: Number(target.port) });
  upstream.setNoDelay(true);
  client.pipe(upstream);
  upstream.pipe(client);
  client.on("error", () => upstream.destroy());
  upstream.on("error", () => client.destroy());
});
server.listen(Number(values.port), "127.0.0.1", () => process.stdout.write(`listening ${values.port}\n`));

const stop = (): void => {
  server.close();
  process.exit(0);
};
process.on("SIGTERM", stop);
process.on("SIGINT", stop);
