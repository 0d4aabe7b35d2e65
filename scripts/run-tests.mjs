// The test runner: type-check, lint, build every example image once (tests share them), then run all
// *.test.ts files with node's test runner. Node 20's --test does not expand globs, so this does.
import { execFileSync, spawnSync } from "node:child_process";
import { mkdirSync, readdirSync, rmSync } from "node:fs";
import { join, relative } from "node:path";

const root = new URL("..", import.meta.url).pathname;
process.chdir(root);

const step = (title, command, args, env = process.env) => {
  console.log(`\n# ${title}`);
  execFileSync(command, args, { stdio: "inherit", env });
};

// This run's image digests, in a file of its own: a run that is interrupted leaves one behind,
// and neither a later run nor a test run by hand reads it (test/support/images.ts).
const imagesFile = join(root, ".test-artifacts", `images-${process.pid}.json`);
const runEnv = { ...process.env, PITH_TEST_IMAGES: imagesFile };
rmSync(".test-artifacts/images.json", { force: true }); // the shared file of earlier versions
step("type-check (src, tests, benches, scripts)", "npx", ["tsc", "-p", "tsconfig.json", "--noEmit"]);
step("lint: promises nobody awaits or handles (eslint.config.js)", "npx", ["eslint", "src", "bench", "scripts", "bin", "test", "examples"]);
mkdirSync(".test-artifacts", { recursive: true });
step("build the examples' images (kernels are cached by config hash)", process.execPath, ["--import", "tsx", "scripts/prepare-test-images.ts"], runEnv);

const files = [];
const walk = (dir) => {
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory() && entry.name !== "node_modules") walk(path);
    else if (entry.name.endsWith(".test.ts")) files.push(relative(root, path));
  }
};
walk("src");
walk("test");
const only = process.argv.slice(2);
const selected = only.length ? files.filter((f) => only.some((o) => f.includes(o))) : files;
console.log(`\n# running ${selected.length} test files`);
const result = spawnSync(process.execPath, ["--import", "tsx", "--test", "--test-concurrency=2", ...selected.sort()], {
  stdio: "inherit",
  env: { ...runEnv, PITH_ACCEL: process.env.PITH_ACCEL ?? "tcg" },
});
rmSync(imagesFile, { force: true });
process.exit(result.status ?? 1);
