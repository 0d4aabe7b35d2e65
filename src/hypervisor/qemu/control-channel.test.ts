import assert from "node:assert/strict";
import { test } from "node:test";
import { parseGuestMessage } from "./control-channel.ts";

test("init's messages parse; anything else is ignored", () => {
  assert.deepEqual(parseGuestMessage("init 812345"), { type: "init", uptimeUs: 812345 });
  assert.deepEqual(parseGuestMessage("clock 912345"), { type: "clock", uptimeUs: 912345 });
  assert.deepEqual(parseGuestMessage("start 900000\r"), { type: "start", uptimeUs: 900000 });
  assert.deepEqual(parseGuestMessage("ready"), { type: "ready" });
  assert.deepEqual(parseGuestMessage("exit 3"), { type: "exit", code: 3 });
  assert.deepEqual(parseGuestMessage("status ready"), { type: "status", ready: true });
  assert.deepEqual(parseGuestMessage("status starting"), { type: "status", ready: false });
  assert.equal(parseGuestMessage("status maybe"), undefined);
  assert.deepEqual(parseGuestMessage("error /pith/argv: No such file"), { type: "error", text: "/pith/argv: No such file" });
  assert.equal(parseGuestMessage("exit three"), undefined);
  assert.equal(parseGuestMessage("init"), undefined);
  assert.equal(parseGuestMessage("hello"), undefined);
  assert.equal(parseGuestMessage(""), undefined);
});
