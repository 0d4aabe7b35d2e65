import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before } from "node:test";

/**
 * For unit tests: PITH_HOME is a fresh temp dir for the tests of the calling file (or suite),
 * and what it was is restored afterwards. `home()` is the dir, once `before` has run.
 */
export function useTempPithHome(prefix: string): { home(): string } {
  let dir: string | undefined;
  const saved = process.env.PITH_HOME;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), prefix));
    process.env.PITH_HOME = dir;
  });
  after(async () => {
    if (saved === undefined) delete process.env.PITH_HOME;
    else process.env.PITH_HOME = saved;
    if (dir) await rm(dir, { recursive: true, force: true });
  });
  return {
    home: () => {
      if (!dir) throw new Error("useTempPithHome: PITH_HOME is made in before(); read it in a test");
      return dir;
    },
  };
}
