/**
 * The escape drill's "outside world" (test/e2e/escape-drill.test.ts), run by the test inside
 * its outside network namespace, never on the real host. It listens on every port the drill
 * aims at, on every address of that namespace, and prints one JSON line per connection or
 * datagram. Only the declared destination (DRILL_TARGET, address:port) is meant to be reached:
 * it answers "target"; anything else that arrives is an escape.
 */
import { createSocket } from "node:dgram";
import { createServer } from "node:net";

const TCP_PORTS = [22, 53, 80, 443, 1900, 7070, 8080, 9000, 9001];
const UDP_PORTS = [53, 1900, 9000];
const [targetAddress, targetPort] = (process.env.DRILL_TARGET ?? "203.0.113.1:9000").split(":") as [string, string];

const say = (event: Record<string, unknown>): void => void process.stdout.write(JSON.stringify(event) + "\n");
const plain = (address: string | undefined): string => (address ?? "").replace(/^::ffff:/, "");

let listening = 0;
const listened = (): void => {
  if (++listening === TCP_PORTS.length + UDP_PORTS.length) say({ event: "listening" });
};

for (const port of TCP_PORTS) {
  const server = createServer((socket) => {
    const local = `${plain(socket.localAddress)}:${socket.localPort}`;
    const target = plain(socket.localAddress) === targetAddress && String(socket.localPort) === targetPort;
    say({ event: target ? "target" : "hit", proto: "tcp", local, remote: `${plain(socket.remoteAddress)}:${socket.remotePort}` });
    socket.on("error", () => {});
    socket.end(target ? "target\n" : "outside\n");
  });
  // "::" without ipv6Only takes IPv4 too: one socket per port sees every address here.
  server.listen({ host: "::", port }, listened);
}

for (const port of UDP_PORTS) {
  const socket = createSocket({ type: "udp6" });
  socket.on("message", (message, remote) => {
    say({ event: "hit", proto: "udp", local: `:${port}`, remote: `${plain(remote.address)}:${remote.port}`, bytes: message.length });
    socket.send("outside\n", remote.port, remote.address);
  });
  socket.bind({ address: "::", port }, listened);
}
