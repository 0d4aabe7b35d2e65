import assert from "node:assert/strict";
import path from "node:path";
import { describe, test, type TestContext } from "node:test";
import { parseAppManifest } from "./app-manifest.ts";
import { FAKE_ELF, onlyProblem, problemsIn, tempApp, yaml } from "./test-support.ts";

/** An app dir where `main.ts` and `bin/server` (an ELF) exist, so only the rule under test fails. */
const app = (t: TestContext) =>
  tempApp(t, { "main.ts": "", "bin/server": FAKE_ELF, "run.sh": "#!/bin/sh\n", "notes.txt": "hi" });

describe("field names", () => {
  test("unknown field close to a known one gets a suggestion", (t) => {
    const p = onlyProblem(yaml("name: a", "entry: main.ts", "memroy: 1G"), app(t), 3, 'unknown field "memroy"');
    assert.equal(p.hint, 'did you mean "memory"?');
    assert.equal(p.column, 1);
  });

  test("unknown field far from all known ones lists them", (t) => {
    const p = onlyProblem(yaml("name: a", "entry: main.ts", "ports: [80]"), app(t), 3, 'unknown field "ports"');
    assert.match(p.hint!, /known fields are: name, entry, .*listen/);
  });

  test("unknown nested field gets a suggestion too", (t) => {
    const p = onlyProblem(yaml("name: a", "entry: main.ts", "listen:", "  - { port: 80, protocl: tcp }"), app(t), 4, "protocl");
    assert.equal(p.path, "listen[0]");
    assert.equal(p.hint, 'did you mean "protocol"?');
  });
});

describe("types", () => {
  test("wrong scalar type says what was expected and what was found", (t) => {
    const p = onlyProblem(yaml("name: a", "entry: main.ts", "vcpus: two"), app(t), 3, 'expected an integer, found a string ("two")');
    assert.equal(p.path, "vcpus");
  });

  test("a scalar where a list belongs", (t) => {
    const p = onlyProblem(yaml("name: a", "entry: main.ts", "listen: 8080"), app(t), 3, "expected a list of ports, found a number (8080)");
    assert.match(p.hint!, /listen: \[8080\]/);
  });

  test("a list where a mapping belongs", (t) => {
    onlyProblem(yaml("name: a", "entry: main.ts", "env:", "  - A=1"), app(t), 4, "expected a mapping, found a list");
  });

  test("a number where an argument string belongs", (t) => {
    const p = onlyProblem(yaml("name: a", "entry: main.ts", "args: [--port, 8080]"), app(t), 3, "found a number (8080)");
    assert.equal(p.path, "args[1]");
  });
});

describe("name", () => {
  test("is required", (t) => {
    onlyProblem(yaml("entry: main.ts"), app(t), 1, "required field is missing");
  });

  test("must be a DNS label", (t) => {
    const p = onlyProblem(yaml("entry: main.ts", "name: My_App"), app(t), 2, '"My_App" is not a valid name');
    assert.match(p.hint!, /"my-app"/);
  });
});

describe("entry and binary", () => {
  test("both set is an error at the later one", (t) => {
    onlyProblem(yaml("name: a", "entry: main.ts", "memory: 1G", "binary: bin/server"), app(t), 4, "cannot both be set");
  });

  test("neither set is an error", (t) => {
    onlyProblem(yaml("name: a", "memory: 1G"), app(t), 1, "neither entry nor binary is set");
  });

  test("missing entry file names the path it looked for", (t) => {
    const dir = app(t);
    const p = onlyProblem(yaml("name: a", "entry: src/missing.ts"), dir, 2, 'file "src/missing.ts" does not exist');
    assert.ok(p.hint!.includes(path.join(dir, "src/missing.ts")));
  });

  test("entry must be JavaScript or TypeScript", (t) => {
    onlyProblem(yaml("name: a", "entry: notes.txt"), app(t), 2, "is not a JavaScript or TypeScript file");
  });

  test("entry must be relative", (t) => {
    onlyProblem(yaml("name: a", "entry: /srv/main.ts"), app(t), 2, "is absolute");
  });

  test("missing binary", (t) => {
    onlyProblem(yaml("name: a", "binary: ./nope"), app(t), 2, 'file "./nope" does not exist');
  });

  test("binary must be an ELF program", (t) => {
    onlyProblem(yaml("name: a", "binary: run.sh"), app(t), 2, "is a script");
    onlyProblem(yaml("name: a", "binary: notes.txt"), app(t), 2, "no ELF header");
  });

  test("a directory is not a program", (t) => {
    onlyProblem(yaml("name: a", "binary: bin"), app(t), 2, "is not a regular file");
  });
});

describe("memory and vcpus", () => {
  test("bad size string", (t) => {
    const p = onlyProblem(yaml("name: a", "entry: main.ts", "memory: 12X"), app(t), 3, '"12X" is not a memory size');
    assert.match(p.hint!, /256M or 1G/);
  });

  test("too large and too small", (t) => {
    onlyProblem(yaml("name: a", "entry: main.ts", "memory: 32G"), app(t), 3, "32G is above the maximum of 16G");
    onlyProblem(yaml("name: a", "entry: main.ts", "memory: 8"), app(t), 3, "8 MiB is below the minimum of 16M");
  });

  test("vcpus out of range or fractional", (t) => {
    const p = onlyProblem(yaml("name: a", "entry: main.ts", "vcpus: 0"), app(t), 3, "0 is out of range (1-8)");
    assert.equal(p.path, "vcpus");
    onlyProblem(yaml("name: a", "entry: main.ts", "vcpus: 9"), app(t), 3, "9 is out of range (1-8)");
    onlyProblem(yaml("name: a", "entry: main.ts", "vcpus: 1.5"), app(t), 3, "expected an integer, found a number (1.5)");
  });
});

describe("listen", () => {
  test("port out of range", (t) => {
    const p = onlyProblem(yaml("name: a", "entry: main.ts", "listen:", "  - 8080", "  - 70000"), app(t), 5, "port 70000 is out of range (1-65535)");
    assert.equal(p.path, "listen[1]");
    assert.equal(p.hint, "use a port between 1 and 65535");
  });

  test("duplicate port, including one written as an object", (t) => {
    const p = onlyProblem(
      yaml("name: a", "entry: main.ts", "listen:", "  - 8080", "  - 9000", "  - { port: 8080, protocol: tcp }"),
      app(t), 6, "port 8080 is listed twice (first on line 4)",
    );
    assert.equal(p.path, "listen[2]");
  });

  test("unknown protocol", (t) => {
    const p = onlyProblem(yaml("name: a", "entry: main.ts", "listen:", "  - port: 80", "    protocol: htp"), app(t), 5, 'unknown protocol "htp"');
    assert.equal(p.hint, 'did you mean "http"?');
  });
});

describe("egress", () => {
  const rule = (t: TestContext, item: string, fragment: string) =>
    onlyProblem(yaml("name: a", "entry: main.ts", "egress:", "  - api.example.com:443", `  - "${item}"`), app(t), 5, fragment);

  test("CIDR ranges are refused", (t) => {
    rule(t, "10.0.0.0/8:80", "looks like a CIDR range");
  });

  test("wildcards are refused", (t) => {
    rule(t, "*:443", "wildcards are not allowed");
    rule(t, "*.example.com:443", "wildcards are not allowed");
  });

  test("port is required and must be in range", (t) => {
    rule(t, "example.com", "has no port");
    rule(t, "example.com:0", "port 0 is out of range");
  });

  test("hosts must be IPv4 literals or DNS names", (t) => {
    rule(t, "300.1.1.1:80", "not a valid IPv4 address");
    rule(t, "bad_host:80", "not a valid DNS name");
    rule(t, "https://example.com:443", "is a URL");
  });

  test("duplicates are refused, ignoring case", (t) => {
    rule(t, "API.example.com:443", "api.example.com:443 is listed twice (first on line 4)");
  });
});

describe("env", () => {
  test("number value asks for quotes", (t) => {
    const p = onlyProblem(yaml("name: a", "entry: main.ts", "env:", "  PORT: 3000"), app(t), 4, "expected a string, found a number (3000)");
    assert.equal(p.path, "env.PORT");
    assert.equal(p.hint, 'put the value in quotes: PORT: "3000"');
  });

  test("boolean value asks for quotes", (t) => {
    onlyProblem(yaml("name: a", "entry: main.ts", "env:", "  DEBUG: true"), app(t), 4, "found a boolean (true)");
  });

  test("PITH_ names are reserved", (t) => {
    onlyProblem(yaml("name: a", "entry: main.ts", "env:", "  OK: x", "  PITH_MODE: x"), app(t), 5, "reserved for Pith");
  });

  test("names must be identifiers", (t) => {
    onlyProblem(yaml("name: a", "entry: main.ts", "env:", "  MY-VAR: x"), app(t), 4, "is not a valid environment variable name");
  });

  test("values must be a single line without NUL", (t) => {
    onlyProblem(yaml("name: a", "entry: main.ts", "env:", '  MOTD: "hello\\nworld"'), app(t), 4, "contains a line break");
    onlyProblem(yaml("name: a", "entry: main.ts", "env:", '  MOTD: "a\\0b"'), app(t), 4, "contains a NUL character");
    onlyProblem(yaml("name: a", "entry: main.ts", "env:", '  MOTD: "a\\rb"'), app(t), 4, "contains a carriage return");
  });

  test("sizes: a value, the number of variables and their total are bounded", (t) => {
    const p = onlyProblem(yaml("name: a", "entry: main.ts", "env:", `  BIG: "${"v".repeat(4097)}"`), app(t), 4, "the value is 4097 bytes long (at most 4096)");
    assert.equal(p.path, "env.BIG");
    const many = Array.from({ length: 129 }, (_, i) => `  V${i}: "x"`);
    onlyProblem(yaml("name: a", "entry: main.ts", "env:", ...many), app(t), 4, "env has 129 variables (at most 128)");
    const big = Array.from({ length: 5 }, (_, i) => `  V${i}: "${"v".repeat(4096)}"`);
    onlyProblem(yaml("name: a", "entry: main.ts", "env:", ...big), app(t), 4, "at most 16384");
  });
});

describe("args", () => {
  test("an argument with a NUL, or too many arguments, is refused", (t) => {
    onlyProblem(yaml("name: a", "entry: main.ts", 'args: ["a\\0b"]'), app(t), 3, "the argument contains a NUL character");
    onlyProblem(yaml("name: a", "entry: main.ts", `args: [${Array.from({ length: 255 }, () => '"x"').join(", ")}]`), app(t), 3, "255 arguments (at most 254)");
  });
});

describe("readiness", () => {
  test("http probe port must be listed in listen", (t) => {
    const p = onlyProblem(
      yaml("name: a", "entry: main.ts", "listen: [8080]", "readiness:", "  http:", "    path: /healthz", "    port: 9090"),
      app(t), 7, "port 9090 is not in listen",
    );
    assert.equal(p.path, "readiness.http.port");
    assert.match(p.hint!, /add 9090 to listen, or probe one of 8080/);
  });

  test("a probe with nothing to probe", (t) => {
    onlyProblem(yaml("name: a", "entry: main.ts", "readiness:", "  tcp: {}"), app(t), 4, "a tcp probe needs a port, but listen is empty");
  });

  test("a binary may say it is ready itself", (t) => {
    const dir = app(t);
    const m = parseAppManifest(yaml("name: a", "binary: bin/server", "readiness: ready()"), path.join(dir, "pith.yaml"));
    assert.deepEqual(m.readiness, { kind: "call" });
  });

  test("unknown form gets a suggestion", (t) => {
    const p = onlyProblem(yaml("name: a", "entry: main.ts", "readiness: ready"), app(t), 3, 'unknown readiness "ready"');
    assert.equal(p.hint, 'did you mean "ready()"?');
  });

  test("only one probe at a time", (t) => {
    onlyProblem(yaml("name: a", "entry: main.ts", "listen: [80]", "readiness: { http: {}, tcp: {} }"), app(t), 4, "give only one probe");
  });

  test("http path must be a URL path", (t) => {
    onlyProblem(yaml("name: a", "entry: main.ts", "listen: [80]", "readiness:", "  http: { path: healthz }"), app(t), 5, "is not a URL path");
  });

  test("readyTimeout needs a unit", (t) => {
    const p = onlyProblem(yaml("name: a", "entry: main.ts", "readyTimeout: 30"), app(t), 3, 'expected a duration like "30s"');
    assert.equal(p.hint, 'add a unit, e.g. "30s"');
    onlyProblem(yaml("name: a", "entry: main.ts", "readyTimeout: soon"), app(t), 3, '"soon" is not a duration');
    onlyProblem(yaml("name: a", "entry: main.ts", "readyTimeout: 0s"), app(t), 3, "longer than zero");
  });
});

describe("YAML syntax", () => {
  test("syntax errors carry line and column", (t) => {
    const p = onlyProblem(yaml("name: a", "entry: main.ts", "listen: [80, 81", "vcpus: 2"), app(t), 4, "YAML syntax error");
    assert.equal(p.column, 1);
  });

  test("duplicate keys", (t) => {
    onlyProblem(yaml("name: a", "entry: main.ts", "name: b"), app(t), 3, "this key appears twice");
  });

  test("tab indentation", (t) => {
    const p = onlyProblem(yaml("name: a", "entry: main.ts", "env:", "\tA: b"), app(t), 4, "YAML syntax error");
    assert.equal(p.hint, "indent with spaces, not tabs");
  });

  test("aliases resolve, and a dangling one is reported", (t) => {
    onlyProblem(yaml("name: a", "entry: main.ts", "listen: [80]", "readiness: { tcp: { port: *nope } }"), app(t), 4, "alias *nope refers to no anchor");
    const dir = app(t);
    const m = parseAppManifest(yaml("name: a", "entry: main.ts", "listen: [&p 80]", "readiness: { tcp: { port: *p } }"), path.join(dir, "pith.yaml"));
    assert.deepEqual(m.readiness, { kind: "tcp", port: 80 });
  });
});

test("several problems in one file are all reported", (t) => {
  const problems = problemsIn(yaml(
    "name: Web App",         // 1
    "entry: main.ts",        // 2
    "memroy: 1G",            // 3
    "listen: [80, 80]",      // 4
    "egress: ['*:443']",     // 5
    "env: { PORT: 80 }",     // 6
    "vcpus: 0",              // 7
    "readyTimeout: 30",      // 8
  ), app(t));
  assert.deepEqual(problems.map((p) => [p.line, p.path]), [
    [1, "name"], [3, ""], [4, "listen[1]"], [5, "egress[0]"], [6, "env.PORT"], [7, "vcpus"], [8, "readyTimeout"],
  ]);
});
