import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { API_VERSION, type ResourceInput } from "../../model/resource.ts";
import { StoreError } from "../store.ts";
import { EtcdLeadership } from "./etcd-leadership.ts";
import { EtcdStore } from "./etcd-store.ts";
import { EtcdTestCluster, etcdMissing, type TestClusterTls } from "./test-cluster.ts";

const missing = etcdMissing() ?? (existsSync("/usr/bin/openssl") ? undefined : "/usr/bin/openssl is missing (it makes the test's certificates)") ?? (existsSync("/usr/bin/etcdctl") ? undefined : "/usr/bin/etcdctl is missing: apt-get install etcd-client");

/** A CA, a member certificate for 127.0.0.1 and a client certificate, in `dir`. */
function makeCertificates(dir: string): TestClusterTls {
  const openssl = (...args: string[]) => execFileSync("openssl", args, { cwd: dir, stdio: ["ignore", "ignore", "pipe"] });
  openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem", "-days", "1", "-subj", "/CN=pith-test-ca");
  for (const [name, usage] of [["server", "serverAuth,clientAuth"], ["client", "clientAuth"]] as const) {
    writeFileSync(join(dir, `${name}.ext`), `subjectAltName=IP:127.0.0.1\nextendedKeyUsage=${usage}\n`);
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", `${name}.key`, "-out", `${name}.csr`, "-subj", `/CN=${name === "server" ? "127.0.0.1" : "root"}`);
    openssl("x509", "-req", "-in", `${name}.csr`, "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial", "-out", `${name}.pem`, "-days", "1", "-extfile", `${name}.ext`);
  }
  return {
    caFile: join(dir, "ca.pem"),
    serverCertFile: join(dir, "server.pem"),
    serverKeyFile: join(dir, "server.key"),
    clientCertFile: join(dir, "client.pem"),
    clientKeyFile: join(dir, "client.key"),
  };
}

const service = (name: string): ResourceInput<"Service"> => ({ apiVersion: API_VERSION, kind: "Service", metadata: { name }, spec: { image: "hello", replicas: 1 } });

test("etcd over mutual TLS with a password user limited to Pith's prefix", { skip: missing, timeout: 180_000 }, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), "pith-etcd-tls-"));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const tls = makeCertificates(dir);
  const cluster = await EtcdTestCluster.start(1, { tls });
  t.after(() => cluster.destroy());
  const files = { ca: readFileSync(tls.caFile), cert: readFileSync(tls.clientCertFile), key: readFileSync(tls.clientKeyFile) };

  // TLS alone.
  const store = await EtcdStore.open({ endpoints: cluster.endpoints, tls: files, prefix: "/pith/", requestTimeoutMs: 3000 });
  try {
    const created = await store.create(service("over-tls"));
    assert.equal((await store.get("Service", "over-tls"))?.metadata.uid, created.metadata.uid);
  } finally {
    await store.close();
  }
  // Without the CA (plain text to a TLS port) there is no store, and a clear error.
  await assert.rejects(EtcdStore.open({ endpoints: cluster.endpoints, requestTimeoutMs: 2000 }), (e: unknown) => e instanceof StoreError && e.code === "Unavailable");

  // A user that may touch only /pith/, then auth on.
  const etcdctl = (...args: string[]) =>
    execFileSync("etcdctl", [`--endpoints=https://${cluster.endpoints[0]}`, `--cacert=${tls.caFile}`, `--cert=${tls.clientCertFile}`, `--key=${tls.clientKeyFile}`, ...args], {
      env: { ...process.env, ETCDCTL_API: "3" },
      stdio: ["ignore", "pipe", "pipe"],
    });
  etcdctl("user", "add", "root:root-secret");
  etcdctl("user", "add", "pith:pith-secret");
  etcdctl("role", "add", "pith");
  etcdctl("role", "grant-permission", "pith", "--prefix=true", "readwrite", "/pith/");
  etcdctl("user", "grant-role", "pith", "pith");
  etcdctl("auth", "enable");

  const authed = await EtcdStore.open({ endpoints: cluster.endpoints, tls: files, auth: { username: "pith", password: "pith-secret" }, prefix: "/pith/", requestTimeoutMs: 3000 });
  try {
    await authed.create(service("with-auth"));
    assert.deepEqual((await authed.list("Service")).items.map((s) => s.metadata.name), ["over-tls", "with-auth"]);
    const seen: string[] = [];
    const stop = await authed.watch("Service", undefined, (e) => seen.push(e.object.metadata.name));
    const written = await authed.create(service("watched"));
    assert.ok(seen.includes("watched"), `the watch saw ${seen.join(", ")} when the write at ${written.metadata.resourceVersion} resolved`);
    stop();
    // The controllers' election works for this user too (a lease and the leader key under /pith/).
    const leadership = new EtcdLeadership(authed, { identity: "tls-test", ttlSeconds: 2, pollMs: 100 });
    let led = false;
    leadership.run(() => (led = true));
    for (let i = 0; i < 100 && !led; i++) await new Promise((resolve) => setTimeout(resolve, 50));
    await leadership.stop();
    assert.ok(led, "the limited user could not be elected");
  } finally {
    await authed.close();
  }
  // The same user under another prefix is refused, clearly.
  const outside = await EtcdStore.open({ endpoints: cluster.endpoints, tls: files, auth: { username: "pith", password: "pith-secret" }, prefix: "/other/", requestTimeoutMs: 3000 }).catch((e: unknown) => e);
  if (outside instanceof EtcdStore) {
    await assert.rejects(outside.create(service("nope")), (e: unknown) => e instanceof StoreError && /permission denied/i.test(e.message));
    await outside.close();
  } else {
    assert.match(String(outside), /permission denied.*Check --etcd-user/i);
  }
  // A wrong password is refused, clearly.
  await assert.rejects(
    EtcdStore.open({ endpoints: cluster.endpoints, tls: files, auth: { username: "pith", password: "wrong" }, prefix: "/pith/", requestTimeoutMs: 3000 }),
    (e: unknown) => e instanceof StoreError && /authentication failed|invalid/i.test(e.message),
  );
});
