import { posix } from "node:path";
import { GUEST_APP_SCRIPT, GUEST_CODE_CACHE } from "./guest-paths.ts";

const { dirname } = posix;

/** Where the start script finds the app and its cache: the guest's paths, or a test's. */
export interface StartPaths {
  app: string;
  cache: string;
}
export const GUEST_START_PATHS: StartPaths = { app: GUEST_APP_SCRIPT, cache: GUEST_CODE_CACHE };

/**
 * How the app's compiled code is made and loaded: the same wrapper, file name and options at build
 * time (code-cache.ts) and in the guest (the start script), or V8 refuses the cache. V8 checks a
 * cache's header (its version, its flags, the source's length: not its text, so the cache and the
 * app must come from the same build, as both do from the image) and trusts the rest: a damaged
 * cache crashes node. Verifying the checksum, only while this one script compiles, makes V8
 * refuse it instead. The flag is part of what a cache must match, so both sides set it, and the
 * builder makes the cache (\`use\`) before it is unset.
 */
export const COMPILE_APP_SCRIPT = `
function compileApp(vm, v8, Module, source, filename, cachedData, use = (script) => script) {
  v8.setFlagsFromString("--verify-snapshot-checksum");
  try {
    return use(new vm.Script(Module.wrap(source), {
      filename,
      importModuleDynamically: vm.constants.USE_MAIN_CONTEXT_DEFAULT_LOADER,
      ...(cachedData ? { cachedData } : {}),
    }));
  } finally {
    v8.setFlagsFromString("--no-verify-snapshot-checksum");
  }
}
`;

/**
 * The script node runs in a Node image whose app is CommonJS: it loads the app through node's own
 * CommonJS loader (require.main, module.paths and errors as with `node /app/main.cjs`), but
 * compiles it with the V8 code cache made at build time. A missing or refused cache only costs
 * the compile it would have saved: the app starts all the same, and the refusal is said on stderr.
 */
export function nodeStartScript(paths: StartPaths = GUEST_START_PATHS): string {
  const app = JSON.stringify(paths.app);
  return `"use strict";
// Written by Pith (src/image/node-start-script.ts): runs ${paths.app} with its V8 code cache.
const fs = require("node:fs"), vm = require("node:vm"), v8 = require("node:v8"), Module = require("node:module");
${COMPILE_APP_SCRIPT}
let cachedData;
try {
  cachedData = fs.readFileSync(${JSON.stringify(paths.cache)});
} catch {}
const compile = Module.prototype._compile;
Module.prototype._compile = function (content, filename) {
  if (filename !== ${app}) return compile.call(this, content, filename);
  Module.prototype._compile = compile;
  const script = compileApp(vm, v8, Module, content, filename, cachedData);
  if (cachedData && script.cachedDataRejected) process.stderr.write("pith: V8 refused the app's code cache; compiled the app instead\\n");
  return script.runInThisContext({ displayErrors: true }).call(this.exports, this.exports, Module.createRequire(filename), this, filename, ${JSON.stringify(dirname(paths.app))});
};
process.argv[1] = ${app};
Module.runMain(${app});
`;
}
