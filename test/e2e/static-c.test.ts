import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { readFile } from "node:fs/promises";
import { describe, test } from "node:test";
import { QmpClient } from "../../src/hypervisor/qemu/qmp-client.ts";
import { appImage } from "../support/images.ts";
import { httpGet, missingForMachines, startMachine } from "../support/machines.ts";

const skip = missingForMachines();

describe("examples/static-c on QEMU", { skip, timeout: 600_000 }, () => {
  test("boots, becomes ready, serves HTTP, and stops gracefully", async (t) => {
    execFileSync("make", ["-s", "-C", "examples/static-c"]);
    const image = await appImage("examples/static-c");
    const machine = await startMachine(t, image);
    const timings = await machine.whenReady();
    assert.ok(timings.readyMs! > 0 && timings.kernelMs! > 0, `timings recorded: ${JSON.stringify(timings)}`);
    const { status, body } = await httpGet(machine.ports[0]!.url);
    assert.equal(status, 200);
    assert.match(body, /^hello from static-c \(request 1\)/);

    const exit = await machine.stop(5000);
    assert.equal(exit.code, 0, exit.reason);
    assert.match(await readFile(machine.consoleLog, "utf8"), /static-c: stopping after 1 requests/);
  });

  test("a port the image did not declare cannot be reached from the host", async (t) => {
    const image = await appImage("examples/static-c");
    // The app listens on 9090 instead of its declared 8080: nothing forwards to 9090.
    const machine = await startMachine(t, image, { env: { PORT: "9090" } });
    await machine.whenReady();
    const qmp = await QmpClient.connect(machine.consoleLog.replace(/console\.log$/, "vm/qmp.sock"));
    t.after(() => qmp.close());
    const usernet = await qmp.execute<string>("human-monitor-command", { "command-line": "info usernet" });
    const forwards = usernet.split("\n").filter((l) => l.includes("HOST_FORWARD"));
    assert.equal(forwards.length, 1, usernet);
    assert.match(forwards[0]!, new RegExp(`127\\.0\\.0\\.1\\s+${machine.ports[0]!.hostPort}\\s+10\\.0\\.2\\.15\\s+8080`));
    // The declared port's forward finds nothing listening behind it: no HTTP answer comes back.
    await assert.rejects(httpGet(machine.ports[0]!.url, 3000));
  });
});
