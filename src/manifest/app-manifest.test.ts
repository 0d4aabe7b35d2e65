import assert from "node:assert/strict";
import { statSync, writeFileSync } from "node:fs";
import path from "node:path";
import { describe, test } from "node:test";
import { isPithError } from "../shared/errors.ts";
import { loadAppManifest, ManifestError, parseAppManifest } from "./app-manifest.ts";
import { FAKE_ELF, problemsIn, tempApp, yaml } from "./test-support.ts";

const identityOf = (file: string) => {
  const { dev, ino } = statSync(file);
  return { dev, ino };
};

describe("parseAppManifest", () => {
  test("normalises a full manifest", (t) => {
    const dir = tempApp(t, { "src/main.ts": "export {};\n", "config/app.conf": "x = 1\n" });
    const text = yaml(
      "# a comment",
      "name: web-app",
      "entry: src/main.ts",
      "args: [--verbose, '--port=8080']",
      "memory: 1G",
      "vcpus: 2",
      "listen:",
      "  - 8080",
      "  - { port: 9000, protocol: tcp }",
      "egress:",
      "  - API.Example.com:443",
      "  - 10.0.0.5:5432",
      "env:",
      "  NODE_ENV: production",
      "  PORT: \"8080\"",
      "  EMPTY: \"\"",
      "readiness:",
      "  http:",
      "    path: /healthz",
      "    port: 8080",
      "readyTimeout: 2m",
      "files: [config/app.conf]",
      "node: {}",
    );
    const file = path.join(dir, "pith.yaml");
    assert.deepEqual(parseAppManifest(text, file), {
      name: "web-app",
      dir,
      source: { kind: "entry", path: path.join(dir, "src/main.ts") },
      args: ["--verbose", "--port=8080"],
      memoryMiB: 1024,
      vcpus: 2,
      listen: [{ port: 8080, protocol: "http" }, { port: 9000, protocol: "tcp" }],
      egress: [{ host: "api.example.com", port: 443 }, { host: "10.0.0.5", port: 5432 }],
      env: { NODE_ENV: "production", PORT: "8080", EMPTY: "" },
      readiness: { kind: "http", port: 8080, path: "/healthz" },
      readyTimeoutMs: 120_000,
      files: [{ from: "config/app.conf", source: path.join(dir, "config/app.conf"), dest: "/app/config/app.conf", executable: false, line: 22, identity: identityOf(path.join(dir, "config/app.conf")) }],
      node: { external: [], codeCache: false },
      volumes: [],
    });
  });

  test("applies defaults for an entry app", (t) => {
    const dir = tempApp(t, { "main.mjs": "" });
    const m = parseAppManifest(yaml("name: a", "entry: main.mjs"), path.join(dir, "pith.yaml"));
    assert.equal(m.memoryMiB, 512);
    assert.equal(m.vcpus, 1);
    assert.deepEqual([m.args, m.listen, m.egress, m.env], [[], [], [], {}]);
    assert.deepEqual(m.readiness, { kind: "call" });
    assert.equal(m.readyTimeoutMs, 60_000);
  });

  test("applies defaults for a binary app, with and without listen", (t) => {
    const dir = tempApp(t, { "bin/server": FAKE_ELF });
    const file = path.join(dir, "pith.yaml");
    const quiet = parseAppManifest(yaml("name: a", "binary: bin/server"), file);
    assert.deepEqual(quiet.source, { kind: "binary", path: path.join(dir, "bin/server") });
    assert.equal(quiet.memoryMiB, 128);
    assert.deepEqual(quiet.readiness, { kind: "none" });
    const serving = parseAppManifest(yaml("name: a", "binary: bin/server", "listen: [80, 81]"), file);
    assert.deepEqual(serving.readiness, { kind: "tcp", port: 80 });
  });

  test("accepts an absolute binary path, size spellings and probe shorthands", (t) => {
    const dir = tempApp(t, { "server": FAKE_ELF });
    const m = parseAppManifest(
      yaml("name: a", `binary: ${path.join(dir, "server")}`, "memory: 256", "listen: [8080]", "readiness:", "  tcp:"),
      path.join(tempApp(t), "pith.yaml"),
    );
    assert.equal(m.source.path, path.join(dir, "server"));
    assert.equal(m.memoryMiB, 256);
    assert.deepEqual(m.readiness, { kind: "tcp", port: 8080 });
  });

  test("treats an empty optional field as not given", (t) => {
    const dir = tempApp(t, { "main.ts": "" });
    const m = parseAppManifest(yaml("name: a", "entry: main.ts", "env:", "listen:"), path.join(dir, "pith.yaml"));
    assert.deepEqual([m.env, m.listen], [{}, []]);
  });

  test("reports every problem in the file, in order, rendered like a compiler", (t) => {
    const dir = tempApp(t, { "main.ts": "" });
    const file = path.join(dir, "pith.yaml");
    const text = yaml("name: Bad_Name", "entry: main.ts", "vcpus: 0", "listen: [70000]");
    assert.throws(() => parseAppManifest(text, file), (e) => {
      assert.ok(e instanceof ManifestError);
      assert.equal(e.code, "MANIFEST_INVALID");
      assert.equal(e.kind, "user");
      assert.deepEqual(e.problems.map((p) => [p.line, p.path]), [[1, "name"], [3, "vcpus"], [4, "listen[0]"]]);
      const rendered = e.message.split("\n");
      assert.ok(rendered.includes(`${file}:4:10: listen[0]: port 70000 is out of range (1-65535)`), e.message);
      assert.equal(rendered[rendered.length - 1], "  fix: use a port between 1 and 65535");
      return true;
    });
  });

  test("rejects an empty file", (t) => {
    const dir = tempApp(t);
    for (const text of ["", "# only a comment\n"]) {
      const [problem, ...rest] = problemsIn(text, dir);
      assert.equal(rest.length, 0);
      assert.match(problem!.message, /the manifest is empty/);
      assert.equal(problem!.line, 1);
    }
  });

  test("rejects a top level that is not a mapping", (t) => {
    const [problem] = problemsIn(yaml("- name: a"), tempApp(t));
    assert.match(problem!.message, /expected a mapping of fields at the top level, found a list/);
  });
});

describe("loadAppManifest", () => {
  test("finds pith.yaml in an app directory, or is given the file", async (t) => {
    const dir = tempApp(t, { "main.ts": "", "pith.yaml": yaml("name: from-yaml", "entry: main.ts") });
    assert.equal((await loadAppManifest(dir)).name, "from-yaml");
    assert.equal((await loadAppManifest(path.join(dir, "pith.yaml"))).name, "from-yaml");
  });

  test("falls back to pith.yml", async (t) => {
    const dir = tempApp(t, { "main.ts": "", "pith.yml": yaml("name: from-yml", "entry: main.ts") });
    const m = await loadAppManifest(dir);
    assert.equal(m.name, "from-yml");
    assert.equal(m.dir, dir);
  });

  test("prefers pith.yaml over pith.yml", async (t) => {
    const dir = tempApp(t, { "main.ts": "", "pith.yml": yaml("name: yml", "entry: main.ts") });
    writeFileSync(path.join(dir, "pith.yaml"), yaml("name: yaml", "entry: main.ts"));
    assert.equal((await loadAppManifest(dir)).name, "yaml");
  });

  test("names the directory when it holds no manifest", async (t) => {
    const dir = tempApp(t);
    await assert.rejects(loadAppManifest(dir), (e) => {
      assert.ok(isPithError(e));
      assert.equal(e.code, "MANIFEST_NOT_FOUND");
      assert.ok(e.message.includes(dir));
      return true;
    });
  });

  test("names a path that does not exist", async (t) => {
    const missing = path.join(tempApp(t), "nope", "pith.yaml");
    await assert.rejects(loadAppManifest(missing), (e) => isPithError(e) && e.message.includes(missing));
  });

  test("reports problems against the file it loaded", async (t) => {
    const dir = tempApp(t, { "pith.yaml": yaml("name: a") });
    await assert.rejects(loadAppManifest(dir), (e) => {
      assert.ok(e instanceof ManifestError);
      assert.equal(e.problems[0]!.file, path.join(dir, "pith.yaml"));
      return true;
    });
  });
});
