import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { createServer, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test, type TestContext } from "node:test";
import { QmpClient } from "./qmp-client.ts";

/** A "QEMU monitor" that greets, answers the handshake, then runs `script` on the next command. */
async function monitor(t: TestContext, script: (socket: Socket) => void, greeting = '{"QMP":{}}\n'): Promise<string> {
  const dir = mkdtempSync(join(tmpdir(), "pith-qmp-"));
  const path = join(dir, "qmp.sock");
  const server = createServer((socket) => {
    socket.on("error", () => {});
    socket.write(greeting);
    let commands = 0;
    socket.on("data", () => {
      if (commands++ === 0) socket.write('{"return":{},"id":1}\n');
      else script(socket);
    });
  });
  await new Promise<void>((resolve) => server.listen(path, resolve));
  t.after(() => {
    server.close();
    rmSync(dir, { recursive: true, force: true });
  });
  return path;
}

test("a monitor that sends garbage fails the commands waiting on it, and nothing else", async (t) => {
  const path = await monitor(t, (s) => s.write("this is not JSON\n"));
  const qmp = await QmpClient.connect(path, 2000);
  await assert.rejects(qmp.execute("query-status"), /QEMU's monitor sent something that is not a QMP message/);
  await assert.rejects(qmp.execute("query-status"), /not a QMP message/);
});

test("a monitor that sends an endless line is cut off", async (t) => {
  const path = await monitor(t, (s) => s.write("x".repeat(2 * 1024 * 1024)));
  const qmp = await QmpClient.connect(path, 2000);
  await assert.rejects(qmp.execute("query-status"), /a line over 1048576 characters/);
});

test("a monitor whose greeting is garbage is not connected to", async (t) => {
  const path = await monitor(t, () => {}, "[1,2,3]\n");
  await assert.rejects(QmpClient.connect(path, 300), /cannot connect to QEMU's monitor/);
});

test("a monitor that appears later is connected to once it listens", async (t) => {
  const dir = mkdtempSync(join(tmpdir(), "pith-qmp-"));
  const path = join(dir, "qmp.sock");
  const server = createServer((socket) => {
    socket.on("error", () => {});
    socket.write('{"QMP":{}}\n');
    socket.on("data", () => socket.write('{"return":{},"id":1}\n'));
  });
  t.after(() => {
    server.close();
    rmSync(dir, { recursive: true, force: true });
  });
  const connecting = QmpClient.connect(path, 5000, 2);
  await new Promise((resolve) => setTimeout(resolve, 100));
  await new Promise<void>((resolve) => server.listen(path, resolve));
  const qmp = await connecting;
  qmp.close();
});
