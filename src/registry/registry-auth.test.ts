import assert from "node:assert/strict";
import { chmod, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { isPithError } from "../shared/errors.ts";
import { credentialFor, parseChallenge, tokenRealm } from "./registry-auth.ts";

describe("registry auth", () => {
  it("parses bearer and basic challenges", () => {
    assert.deepEqual(parseChallenge('Bearer realm="https://r.io/token",service="r.io",scope="repository:a/b:pull,push"'), {
      scheme: "bearer",
      params: Object.assign(Object.create(null), { realm: "https://r.io/token", service: "r.io", scope: "repository:a/b:pull,push" }),
    });
    assert.equal(parseChallenge('Basic realm="Registry Realm"')?.scheme, "basic");
    assert.equal(parseChallenge(undefined), undefined);
    // A hostile header cannot set an object's prototype.
    const c = parseChallenge('Bearer __proto__="x",realm="https://r.io/t"');
    assert.equal(Object.getPrototypeOf(c!.params), null);
  });

  it("takes a token only from the registry's own origin", () => {
    const base = new URL("http://127.0.0.1:5000/");
    assert.equal(tokenRealm({ scheme: "bearer", params: { realm: "http://127.0.0.1:5000/token" } }, base).pathname, "/token");
    for (const realm of ["http://127.0.0.1:5001/token", "http://127.0.0.2:5000/token", "https://127.0.0.1:5000/token", "http://evil.example/token", "file:///etc/passwd", "not a url"]) {
      assert.throws(() => tokenRealm({ scheme: "bearer", params: { realm } }, base), /not the registry itself|not a URL/, realm);
    }
    assert.throws(() => tokenRealm({ scheme: "bearer", params: {} }, base), /no realm/);
  });

  it("reads credentials per registry from the env or a private file, and refuses a file others can read", async () => {
    const env = { PITH_REGISTRY_AUTH: JSON.stringify({ "r.io:5000": { username: "u", password: "p" }, "t.io": { token: "tok" } }) };
    assert.deepEqual(credentialFor("r.io:5000", env), { username: "u", password: "p" });
    assert.deepEqual(credentialFor("t.io", env), { token: "tok" });
    assert.equal(credentialFor("other.io", env), undefined, "a registry gets only its own credential");
    assert.equal(credentialFor("__proto__", env), undefined);
    assert.throws(() => credentialFor("r.io", { PITH_REGISTRY_AUTH: "{" }), (e) => isPithError(e) && e.code === "REGISTRY_AUTH_INVALID");
    assert.throws(() => credentialFor("r.io", { PITH_REGISTRY_AUTH: '{"r.io": {"username": 1}}' }), (e) => isPithError(e) && e.code === "REGISTRY_AUTH_INVALID");

    const dir = await mkdtemp(join(tmpdir(), "pith-auth-"));
    try {
      const file = join(dir, "auth.json");
      await writeFile(file, JSON.stringify({ "r.io": { token: "x" } }), { mode: 0o600 });
      assert.deepEqual(credentialFor("r.io", { PITH_REGISTRY_AUTH_FILE: file }), { token: "x" });
      await chmod(file, 0o644);
      assert.throws(() => credentialFor("r.io", { PITH_REGISTRY_AUTH_FILE: file }), (e) => isPithError(e) && /others may read it/.test(e.message) && /chmod 600/.test(e.hint ?? ""));
      assert.throws(() => credentialFor("r.io", { PITH_REGISTRY_AUTH_FILE: join(dir, "missing") }), (e) => isPithError(e) && e.code === "REGISTRY_AUTH_FILE");
      // No file at the default place: no credentials, no error.
      assert.equal(credentialFor("r.io", { PITH_HOME: dir }), undefined);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
