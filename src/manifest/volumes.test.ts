import assert from "node:assert/strict";
import path from "node:path";
import { describe, test, type TestContext } from "node:test";
import { parseAppManifest } from "./app-manifest.ts";
import { FAKE_ELF, onlyProblem, problemsIn, tempApp, yaml } from "./test-support.ts";

const app = (t: TestContext) => tempApp(t, { server: FAKE_ELF });
const head = ["name: a", "binary: server"];

describe("volumes", () => {
  test("are normalised: sizes in MiB, in declaration order; none by default", (t) => {
    const dir = app(t);
    const m = parseAppManifest(yaml(...head, "volumes:", "  - { name: data, mount: /data, size: 1G }", "  - { name: cache, mount: /var/cache/app, size: 64 }"), path.join(dir, "pith.yaml"));
    assert.deepEqual(m.volumes, [{ name: "data", mount: "/data", sizeMiB: 1024 }, { name: "cache", mount: "/var/cache/app", sizeMiB: 64 }]);
    assert.deepEqual(parseAppManifest(yaml(...head), path.join(dir, "pith.yaml")).volumes, []);
  });

  test("a relative mount path", (t) => {
    const p = onlyProblem(yaml(...head, "volumes:", "  - { name: data, mount: data, size: 1G }"), app(t), 4, '"data" is not an absolute path');
    assert.equal(p.path, "volumes[0].mount");
  });

  for (const mount of ["/proc", "/dev/shm", "/sys", "/tmp/x", "/pith", "/app", "/app/data", "/runtime", "/init"]) {
    test(`a mount over ${mount} is refused`, (t) => {
      onlyProblem(yaml(...head, "volumes:", `  - { name: data, mount: ${mount}, size: 1G }`), app(t), 4, "which Pith's init or the app's own files use");
    });
  }

  test("the root, a path not in its simplest form, odd characters", (t) => {
    onlyProblem(yaml(...head, "volumes:", "  - { name: data, mount: /, size: 1G }"), app(t), 4, "over the root filesystem");
    const p = onlyProblem(yaml(...head, "volumes:", "  - { name: data, mount: /data/../proc, size: 1G }"), app(t), 4, "not in its simplest form");
    assert.match(p.hint!, /"\/proc"/);
    onlyProblem(yaml(...head, "volumes:", '  - { name: data, mount: "/da ta", size: 1G }'), app(t), 4, "characters other than");
  });

  test("duplicate names and overlapping mounts name the first line", (t) => {
    onlyProblem(yaml(...head, "volumes:", "  - { name: data, mount: /a, size: 1G }", "  - { name: data, mount: /b, size: 1G }"), app(t), 5, 'volume "data" is declared twice (first on line 4)');
    onlyProblem(yaml(...head, "volumes:", "  - { name: a, mount: /srv, size: 1G }", "  - { name: b, mount: /srv/b, size: 1G }"), app(t), 5, "/srv/b overlaps /srv (line 4)");
    onlyProblem(yaml(...head, "volumes:", "  - { name: a, mount: /srv, size: 1G }", "  - { name: b, mount: /srv, size: 1G }"), app(t), 5, "overlaps");
  });

  test("sizes are bounded and need a size", (t) => {
    onlyProblem(yaml(...head, "volumes:", "  - { name: data, mount: /data, size: 1M }"), app(t), 4, "below the minimum of 16M");
    onlyProblem(yaml(...head, "volumes:", "  - { name: data, mount: /data, size: 2000G }"), app(t), 4, "above the maximum of 1024G");
    onlyProblem(yaml(...head, "volumes:", "  - { name: data, mount: /data, size: lots }"), app(t), 4, '"lots" is not a size');
    onlyProblem(yaml(...head, "volumes:", "  - { name: data, mount: /data }"), app(t), 4, "size is missing");
  });

  test("names are short DNS labels; unknown fields get a suggestion", (t) => {
    onlyProblem(yaml(...head, "volumes:", "  - { name: Data_1, mount: /data, size: 1G }"), app(t), 4, '"Data_1" is not a valid volume name');
    const p = onlyProblem(yaml(...head, "volumes:", "  - { name: data, mount: /data, size: 1G, mode: rw }"), app(t), 4, 'unknown field "mode"');
    assert.equal(p.path, "volumes[0]");
  });

  test("at most 8, and every bad item is reported at once", (t) => {
    const many = Array.from({ length: 9 }, (_, i) => `  - { name: v${i}, mount: /v${i}, size: 16M }`);
    onlyProblem(yaml(...head, "volumes:", ...many), app(t), 4, "9 volumes (at most 8)");
    const problems = problemsIn(yaml(...head, "volumes:", "  - { name: a, mount: rel, size: 1G }", "  - { name: b, mount: /proc, size: 1K }"), app(t));
    assert.deepEqual(problems.map((p) => p.line), [4, 5, 5]);
  });
});
