import assert from "node:assert/strict";
import { test } from "node:test";
import type { MachineSpec } from "../hypervisor/hypervisor.ts";
import { keyedEnv } from "./machine-starter.ts";
import { envKey } from "./snapshot-store.ts";

const spec = (value: string, hash?: string): MachineSpec =>
  ({ id: "m", stateDir: "/x", kernel: "k", initrd: "i", env: { PLAIN: "p", DB: value }, ...(hash ? { secretHashes: { DB: hash } } : {}) }) as unknown as MachineSpec;

test("a snapshot key hashes a Secret value's keyed hash, never the value; a new value still means a new key", () => {
  assert.deepEqual(keyedEnv(spec("pw-1", "hmac-sha256:aa")), { PLAIN: "p", DB: "secret:hmac-sha256:aa" });
  assert.equal(envKey(keyedEnv(spec("pw-1", "hmac-sha256:aa"))), envKey(keyedEnv(spec("pw-2", "hmac-sha256:aa"))), "the value itself is not in the key");
  assert.notEqual(envKey(keyedEnv(spec("pw-1", "hmac-sha256:aa"))), envKey(keyedEnv(spec("pw-2", "hmac-sha256:bb"))));
  assert.deepEqual(keyedEnv(spec("plain")), { PLAIN: "p", DB: "plain" }, "without Secrets the env is the key's input, as before");
});
