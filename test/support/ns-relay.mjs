// Run inside a network namespace (`ip netns exec NS node ns-relay.mjs SOCKET HOST PORT`): relays
// every connection made to the unix socket SOCKET to HOST:PORT in that namespace. Unix sockets
// are found by path, not by namespace, so a test on the real host reaches a listener inside a
// namespace this way without giving the host any address of the namespace's range.
import { createConnection, createServer } from "node:net";

const [socketPath, host, port] = process.argv.slice(2);
const server = createServer((client) => {
  const upstream = createConnection({ host, port: Number(port) });
  client.pipe(upstream).pipe(client);
  client.on("error", () => upstream.destroy());
  upstream.on("error", () => client.destroy());
});
server.listen(socketPath, () => process.stdout.write("listening\n"));
