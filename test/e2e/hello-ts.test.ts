import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import { describe, test } from "node:test";
import { appImage } from "../support/images.ts";
import { httpGet, missingForMachines, startMachine } from "../support/machines.ts";

const skip = missingForMachines();

describe("examples/hello-ts on QEMU", { skip, timeout: 600_000 }, () => {
  test("boots, calls ready(), serves its config, and runs its shutdown hook on stop", async (t) => {
    const image = await appImage("examples/hello-ts");
    const machine = await startMachine(t, image, { env: { GREETING: "hi from the test" } });
    const timings = await machine.whenReady();
    for (const stage of ["vmmMs", "kernelMs", "initMs", "appMs", "readyMs"] as const) {
      assert.ok(typeof timings[stage] === "number" && timings[stage]! >= 0, `${stage} in ${JSON.stringify(timings)}`);
    }
    const { status, body } = await httpGet(machine.ports[0]!.url);
    assert.equal(status, 200);
    const reply = JSON.parse(body) as { greeting: string; machine: string };
    assert.equal(reply.greeting, "hi from the test", "the machine's env overrides the image's");
    assert.equal(reply.machine, machine.id, "the app learns its machine id from the guest library");

    const exit = await machine.stop(10_000);
    assert.equal(exit.code, 0, exit.reason);
    assert.match(await readFile(machine.consoleLog, "utf8"), /hello-ts: shutting down/);
  });
});
