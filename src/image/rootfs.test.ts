import assert from "node:assert/strict";
import { copyFileSync, mkdirSync, mkdtempSync, realpathSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { describe, test, type TestContext } from "node:test";
import { parseAppManifest, type AppManifest } from "../manifest/app-manifest.ts";
import { isPithError } from "../shared/errors.ts";
import { destinationClash, planRootfs } from "./rootfs.ts";

describe("declared files beside what the image holds", () => {
  const taken = new Map([["/app", "dir"], ["/lib/x86_64-linux-gnu/libc.so.6", "file"], ["/app/node_modules", "symlink"]] as const);

  test("a free path is fine, also in a directory the image has", () => {
    assert.equal(destinationClash("/srv/static/a.css", taken), undefined);
    assert.equal(destinationClash("/lib/x86_64-linux-gnu/libextra.so", taken), undefined);
  });

  test("the same path, a path below a file or link, or a path that is a directory are refused", () => {
    assert.match(destinationClash("/lib/x86_64-linux-gnu/libc.so.6", taken)!, /already has/);
    assert.match(destinationClash("/app/node_modules/x.js", taken)!, /\/app\/node_modules is a symlink/);
    assert.match(destinationClash("/lib", taken)!, /is a directory in the image/);
    assert.match(destinationClash("/app", taken)!, /already has it/);
  });
});

describe("a binary app's declared files", () => {
  /** A dynamically linked program (a copy of true(1)) with a data file beside it. */
  function app(t: TestContext, files: string[]): AppManifest {
    const dir = realpathSync(mkdtempSync(path.join(tmpdir(), "pith-rootfs-")));
    t.after(() => rmSync(dir, { recursive: true, force: true }));
    copyFileSync("/bin/true", path.join(dir, "prog"));
    mkdirSync(path.join(dir, "share"));
    writeFileSync(path.join(dir, "share/words.txt"), "alpha\nbeta\n");
    writeFileSync(path.join(dir, "share/tool"), "#!/x\n", { mode: 0o755 });
    return parseAppManifest(["name: prog", "binary: prog", "files:", ...files].join("\n") + "\n", path.join(dir, "pith.yaml"));
  }

  test("go into the initramfs at their destination, read-only, beside the program's libraries", async (t) => {
    const plan = await planRootfs(app(t, ['  - { src: "share/*", dest: /usr/share/prog }']));
    const entry = (p: string) => plan.entries.find((e) => e.path === p);
    assert.equal(entry("usr/share/prog/words.txt")?.mode, 0o444);
    assert.equal(entry("usr/share/prog/tool")?.mode, 0o555);
    assert.deepEqual(plan.disk, {}, "a native image has no runtime disk");
    assert.ok(plan.files.some((f) => f.role === "library" && f.path.endsWith("/libc.so.6")));
    assert.deepEqual(plan.files.find((f) => f.path === "/usr/share/prog/words.txt"), { path: "/usr/share/prog/words.txt", kind: "file", size: 11, role: "data", from: "share/words.txt" });
  });

  test("over a library the program needs, refused with the manifest's line", async (t) => {
    const manifest = app(t, ["  - share/words.txt", "  - { src: share/words.txt, dest: /lib/x86_64-linux-gnu/libc.so.6 }"]);
    await assert.rejects(planRootfs(manifest), (e) => isPithError(e) && e.code === "FILES_DEST_TAKEN" && /pith\.yaml:5: files: "share\/words\.txt" cannot go to \/lib\/x86_64-linux-gnu\/libc\.so\.6: the image already has it/.test(e.message));
  });
});

describe("how node starts a Node app", () => {
  function nodeApp(t: TestContext, code: string, node = ""): AppManifest {
    const dir = realpathSync(mkdtempSync(path.join(tmpdir(), "pith-rootfs-node-")));
    t.after(() => rmSync(dir, { recursive: true, force: true }));
    writeFileSync(path.join(dir, "main.ts"), code);
    return parseAppManifest(["name: n", "entry: main.ts", ...(node ? [node] : [])].join("\n") + "\n", path.join(dir, "pith.yaml"));
  }
  const paths = (plan: Awaited<ReturnType<typeof planRootfs>>): string[] => plan.entries.map((e) => `/${e.path}`);

  test("by default, node runs the CommonJS bundle itself: no start script, no cache", async (t) => {
    const plan = await planRootfs(nodeApp(t, "console.log('hi');\n"));
    assert.deepEqual(plan.argv, ["/runtime/node", "/app/main.cjs"]);
    assert.ok(!paths(plan).some((p) => p === "/pith/start.cjs" || p === "/pith/main.cjs.v8-cache"));
  });

  test("node.codeCache: true ships the cache and the start script that loads it", async (t) => {
    const plan = await planRootfs(nodeApp(t, "console.log('hi');\n", "node: { codeCache: true }"));
    assert.deepEqual(plan.argv, ["/runtime/node", "/pith/start.cjs"]);
    assert.ok(paths(plan).includes("/pith/main.cjs.v8-cache") && paths(plan).includes("/app/main.cjs"));
  });

  test("node.codeCache on an app that must stay an ES module is refused, saying why", async (t) => {
    await assert.rejects(planRootfs(nodeApp(t, "await Promise.resolve();\n", "node: { codeCache: true }")),
      (e) => isPithError(e) && e.code === "CODE_CACHE_NEEDS_COMMONJS" && /bundles as an ES module/.test(e.message));
    const plan = await planRootfs(nodeApp(t, "await Promise.resolve();\n"));
    assert.deepEqual(plan.argv, ["/runtime/node", "/app/main.mjs"]);
  });
});
