import assert from "node:assert/strict";
import { mkdtemp, readFile, rm, writeFile, cp } from "node:fs/promises";
import { createServer, type Server } from "node:http";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { describe, test } from "node:test";
import { buildImage } from "../../src/image/image-builder.ts";
import { loadAppManifest } from "../../src/manifest/app-manifest.ts";
import { pithRoot } from "../../src/shared/paths.ts";
import { missingForMachines, startMachine } from "../support/machines.ts";

const skip = missingForMachines();

async function loopbackServer(name: string, hits: string[]): Promise<{ server: Server; port: number }> {
  const server = createServer((req, res) => {
    hits.push(`${name} ${req.url}`);
    res.end(`${name} says hi`);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return { server, port: (server.address() as { port: number }).port };
}

describe("egress is what the image declared, and nothing else", { skip, timeout: 600_000 }, () => {
  test("a declared loopback server is reachable; an undeclared one, the host, and a name leading to loopback are not", async (t) => {
    const hits: string[] = [];
    const declared = await loopbackServer("declared", hits);
    const undeclared = await loopbackServer("undeclared", hits);
    const named = await loopbackServer("named", hits);
    t.after(() => {
      declared.server.close();
      undeclared.server.close();
      named.server.close();
    });

    const app = await mkdtemp(join(tmpdir(), "pith-egress-"));
    t.after(() => rm(app, { recursive: true, force: true }));
    await cp(join(pithRoot(), "test/fixtures/egress-probe/src"), join(app, "src"), { recursive: true });
    const destination = `127.0.0.1:${declared.port}`;
    // Declared by name: what the name resolves to is checked per connection, and loopback is refused.
    const byName = `localhost:${named.port}`;
    await writeFile(
      join(app, "pith.yaml"),
      [
        "name: egress-probe",
        "entry: src/main.ts",
        "memory: 320M",
        "readiness: none",
        `egress: ["${destination}", "${byName}"]`,
        "env:",
        `  DECLARED: "${destination}"`,
        `  NAMED: "${byName}"`,
        `  UNDECLARED_PORT: "${undeclared.port}"`,
        "",
      ].join("\n"),
    );
    const image = await buildImage(await loadAppManifest(app));
    const machine = await startMachine(t, image);
    const exit = await machine.whenExited();
    assert.equal(exit.code, 0, exit.reason);

    const console = await readFile(machine.consoleLog, "utf8");
    const line = console.split("\n").find((l) => l.startsWith("EGRESS_RESULT "));
    assert.ok(line, `the probe printed its results:\n${console}`);
    const results = JSON.parse(line.slice("EGRESS_RESULT ".length)) as Record<string, { ok: boolean; body?: string }>;
    assert.deepEqual(results.declared, { ok: true, body: "declared says hi" });
    assert.deepEqual(results.declaredAgain, { ok: true, body: "declared says hi" });
    assert.equal(results.gatewaySamePort!.ok, false, "the host gateway is closed even on the declared port");
    assert.equal(results.undeclared!.ok, false, "an undeclared loopback server is unreachable");
    assert.equal(results.routeOtherPort!.ok, false, "a declared route leads only to its own port");
    assert.equal(results.named!.ok, false, "a name that resolves to loopback leads nowhere");
    assert.deepEqual(hits, ["declared /", "declared /"], "only the declared server saw requests");
    const netLog = await readFile(join(dirname(machine.consoleLog), "net.log"), "utf8");
    assert.match(netLog, new RegExp(`egress ${byName}: refused 127\\.0\\.0\\.1 \\(loopback`), netLog);
  });
});
