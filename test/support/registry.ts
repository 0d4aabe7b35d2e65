import { spawn, type ChildProcess } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { freeLoopbackPort } from "../../src/shared/free-port.ts";

/**
 * Debian's docker-registry (the CNCF distribution registry, 2.8) on a loopback port, storing
 * blobs in a temp dir of its own: started by a test, stopped and removed by `stop()`.
 */
export const REGISTRY_BINARY = "/usr/bin/docker-registry";

export const registryMissing = (): string | false => (existsSync(REGISTRY_BINARY) ? false : `${REGISTRY_BINARY} is missing (apt-get install docker-registry)`);

export interface TestRegistry {
  /** host:port, as references write it. */
  address: string;
  /** The registry's storage root: blobs are under docker/registry/v2/blobs/sha256/<2 hex>/<hex>/data. */
  storage: string;
  blobPath(digest: string): string;
  stop(): Promise<void>;
}

export async function startRegistry(): Promise<TestRegistry> {
  const dir = await mkdtemp(join(tmpdir(), "pith-registry-"));
  const storage = join(dir, "storage");
  const port = await freeLoopbackPort();
  const config = join(dir, "config.yml");
  await writeFile(
    config,
    [
      "version: 0.1",
      "log: { level: error, accesslog: { disabled: true } }",
      "storage:",
      `  filesystem: { rootdirectory: ${storage} }`,
      "  delete: { enabled: true }",
      "http:",
      `  addr: 127.0.0.1:${port}`,
      "",
    ].join("\n"),
  );
  const child: ChildProcess = spawn(REGISTRY_BINARY, ["serve", config], { stdio: ["ignore", "ignore", "pipe"] });
  let stderr = "";
  child.stderr!.setEncoding("utf8").on("data", (c: string) => (stderr = (stderr + c).slice(-4000)));
  const stop = async (): Promise<void> => {
    if (child.exitCode === null && child.signalCode === null) {
      const exited = new Promise((resolve) => child.once("exit", resolve));
      child.kill("SIGKILL");
      await exited;
    }
    await rm(dir, { recursive: true, force: true });
  };
  const deadline = Date.now() + 20_000;
  for (;;) {
    const ok = await fetch(`http://127.0.0.1:${port}/v2/`).then((r) => r.ok, () => false);
    if (ok) break;
    if (child.exitCode !== null || Date.now() > deadline) {
      await stop();
      throw new Error(`docker-registry did not start on 127.0.0.1:${port}: ${stderr}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    address: `127.0.0.1:${port}`,
    storage,
    blobPath: (digest) => {
      const hex = digest.replace(/^sha256:/, "");
      return join(storage, "docker/registry/v2/blobs/sha256", hex.slice(0, 2), hex, "data");
    },
    stop,
  };
}
