import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, test } from "node:test";
import { isPithError } from "../shared/errors.ts";
import { storeConfigFromFlags } from "./store-flags.ts";

const dir = mkdtempSync(join(tmpdir(), "pith-store-flags-"));
after(() => rmSync(dir, { recursive: true, force: true }));
const file = (name: string, text: string) => {
  const path = join(dir, name);
  writeFileSync(path, text);
  return path;
};

const refused = (flags: Parameters<typeof storeConfigFromFlags>[0], message: RegExp, env: NodeJS.ProcessEnv = {}) =>
  assert.throws(() => storeConfigFromFlags(flags, env), (e: unknown) => isPithError(e) && e.kind === "user" && message.test(e.message));

describe("pith server --store flags", () => {
  test("sqlite is the default; sqlite:PATH names the file", () => {
    assert.equal(storeConfigFromFlags({}, {}).kind, "sqlite");
    assert.deepEqual(storeConfigFromFlags({ store: "sqlite:/var/lib/pith/state.db" }, {}), { kind: "sqlite", path: "/var/lib/pith/state.db" });
  });

  test("etcd endpoints, TLS files, user and password from a file or the environment", () => {
    const config = storeConfigFromFlags(
      { store: "etcd://h1:2379,10.0.0.2:2379,[::1]:2379", etcdCa: file("ca.pem", "CA"), etcdCert: file("c.pem", "CERT"), etcdKey: file("k.pem", "KEY"), etcdUser: "pith", etcdPasswordFile: file("pw", "s3cret\n"), leaderTtl: "7" },
      {},
    );
    assert.equal(config.kind, "etcd");
    if (config.kind !== "etcd") return;
    assert.deepEqual(config.endpoints, ["h1:2379", "10.0.0.2:2379", "[::1]:2379"]);
    assert.equal(config.tls?.ca.toString(), "CA");
    assert.equal(config.tls?.cert?.toString(), "CERT");
    assert.deepEqual(config.auth, { username: "pith", password: "s3cret" });
    assert.equal(config.leaderTtlSeconds, 7);
    const fromEnv = storeConfigFromFlags({ store: "etcd://h1:2379", etcdUser: "pith" }, { PITH_ETCD_PASSWORD: "pw" });
    assert.deepEqual(fromEnv.kind === "etcd" && fromEnv.auth, { username: "pith", password: "pw" });
  });

  test("malformed values are clear user errors", () => {
    refused({ store: "postgres://x" }, /sqlite:PATH or etcd:\/\//);
    refused({ store: "etcd://" }, /is not HOST:PORT/);
    refused({ store: "etcd://h1" }, /"h1" is not HOST:PORT/);
    refused({ store: "etcd://h1:99999" }, /is not HOST:PORT/);
    refused({ store: "etcd://h1:2379,-bad:1" }, /is not HOST:PORT/);
    refused({ store: "etcd://h1:2379", leaderTtl: "1" }, /--leader-ttl/);
    refused({ store: "etcd://h1:2379", leaderTtl: "soon" }, /--leader-ttl/);
    refused({ store: "etcd://h1:2379", etcdCert: file("c2.pem", "C") }, /go together/);
    refused({ store: "etcd://h1:2379", etcdUser: "pith" }, /needs a password/);
    refused({ store: "etcd://h1:2379", etcdCa: join(dir, "missing.pem") }, /--etcd-ca .*missing\.pem/);
    refused({ store: "sqlite:/tmp/x.db", etcdUser: "pith" }, /--etcd-user applies only to --store etcd/);
    refused({ store: "sqlite:" }, /needs a path/);
  });
});
