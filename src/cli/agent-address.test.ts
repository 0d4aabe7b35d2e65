import assert from "node:assert/strict";
import { test } from "node:test";
import { isPithError } from "../shared/errors.ts";
import { checkAgentAddress } from "./agent-address.ts";

const refusal = (fn: () => unknown): string => {
  try {
    fn();
  } catch (e) {
    assert.ok(isPithError(e), String(e));
    return `${e.code}: ${e.message}`;
  }
  throw new Error("not refused");
};

test("an agent's --address is one of the host's private addresses; a public one needs --allow-public-address", () => {
  const mine = ["127.0.0.1", "10.213.0.11", "203.0.113.7"];
  assert.equal(checkAgentAddress("10.213.0.11", false, mine), "10.213.0.11");
  assert.match(refusal(() => checkAgentAddress("203.0.113.7", false, mine)), /^PUBLIC_ADDRESS: .*203\.0\.113\.7 is a public address/);
  assert.equal(checkAgentAddress("203.0.113.7", true, mine), "203.0.113.7");
  assert.match(refusal(() => checkAgentAddress("10.213.0.12", false, mine)), /not an address of this host/);
  for (const bad of ["0.0.0.0", "10.213.0", "eth0", "::1", "255.255.255.255"]) assert.match(refusal(() => checkAgentAddress(bad, true, [bad])), /^BAD_FLAG: --address/, bad);
});
