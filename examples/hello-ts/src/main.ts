import { createServer } from "node:http";
import { config, onRestore, onShutdown, ready } from "pith/guest";

const port = Number(process.env.PORT ?? 8080);
let { machineId } = config();
// A machine started from a snapshot (or claimed from a warm pool) is a new machine with the
// source's memory: what was read from the config at start-up must be read again.
onRestore(() => {
  machineId = config().machineId;
});

// The app's initial fetch: whatever it must have before it can serve. Here, a small table it
// computes; a real service would load config or warm a cache. Only then is it ready.
const squares = Array.from({ length: 1000 }, (_, i) => i * i);

const server = createServer((req, res) => {
  if (req.url === "/healthz") {
    res.writeHead(200, { "content-type": "text/plain" }).end("ok\n");
    return;
  }
  const body = { greeting: process.env.GREETING ?? "hello", machine: machineId ?? "local", squares: squares.length };
  res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify(body) + "\n");
});

server.listen(port, () => {
  console.log(`hello-ts: listening on :${port}`);
  ready();
});

onShutdown(
  () =>
    new Promise<void>((resolve) => {
      console.log("hello-ts: shutting down");
      server.close(() => resolve());
    }),
);
