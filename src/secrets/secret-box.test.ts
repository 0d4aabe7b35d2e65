import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { chmod, readFile, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { test } from "node:test";
import { useTempPithHome } from "../shared/temp-pith-home.ts";
import { SecretBox, secretPlace, secretsKeyPath } from "./secret-box.ts";

const place = secretPlace("db", "password");
const pithHome = useTempPithHome("pith-secrets-");

test("a sealed value opens with the same key and place, and the sealed form does not hold the value", () => {
  const box = new SecretBox(randomBytes(32));
  const sealed = box.seal(place, "hunter2-correct-horse");
  assert.equal(box.open(place, sealed), "hunter2-correct-horse");
  assert.ok(!sealed.includes("hunter2"));
  assert.ok(!Buffer.from(sealed.slice(3), "base64").includes("hunter2"));
  assert.notEqual(box.seal(place, "hunter2-correct-horse"), sealed, "a fresh IV each time");
});

test("a wrong key, another place, or a changed byte is refused", () => {
  const box = new SecretBox(randomBytes(32));
  const sealed = box.seal(place, "s3cret");
  assert.throws(() => new SecretBox(randomBytes(32)).open(place, sealed), /sealed with another key or altered/);
  assert.throws(() => box.open(secretPlace("db", "user"), sealed), /another key or altered/, "moved to another key");
  assert.throws(() => box.open(secretPlace("other", "password"), sealed), /another key or altered/, "moved to another Secret");
  const raw = Buffer.from(sealed.slice(3), "base64");
  for (const at of [0, 12, 28, raw.length - 1]) {
    const tampered = Buffer.from(raw);
    tampered[at]! ^= 1;
    assert.throws(() => box.open(place, `v1.${tampered.toString("base64")}`), /another key or altered/, `byte ${at} flipped`);
  }
  assert.throws(() => box.open(place, "v1.AAAA"), /not a sealed value/);
  assert.throws(() => box.open(place, "plain"), /not a sealed value/);
  assert.throws(() => new SecretBox(randomBytes(16)), /32 bytes/);
});

test("the hash shown for a value is keyed: stable for one key, different under another, and not the value's sha256", () => {
  const key = randomBytes(32);
  const a = new SecretBox(key);
  assert.equal(a.hash(place, "pw"), new SecretBox(key).hash(place, "pw"));
  assert.notEqual(a.hash(place, "pw"), a.hash(place, "pw2"));
  assert.notEqual(a.hash(place, "pw"), new SecretBox(randomBytes(32)).hash(place, "pw"));
  assert.match(a.hash(place, "pw"), /^hmac-sha256:[0-9a-f]{32}$/);
});

test("the key file is made once, 0600, beside the store; a looser or short one is refused", async () => {
  {
    const home = pithHome.home();
    const path = secretsKeyPath();
    assert.equal(path, join(home, "secrets.key"));
    const box = await SecretBox.forHome();
    assert.equal((await stat(path)).mode & 0o777, 0o600);
    const key = await readFile(path);
    assert.equal(key.length, 32);
    const sealed = box.seal(place, "v");
    assert.equal((await SecretBox.forHome()).open(place, sealed), "v", "a second start reads the same key");
    assert.deepEqual(await readFile(path), key);

    await chmod(path, 0o644);
    await assert.rejects(SecretBox.forHome(), /mode 644: other users may have read the key/);
    await chmod(path, 0o600);
    await writeFile(path, "short");
    await assert.rejects(SecretBox.forHome(), /holds 5 bytes/);
  }
});
