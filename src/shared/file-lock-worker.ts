/**
 * A contender for file-lock.test.ts: takes the lock `rounds` times and, while holding it, does a
 * read-modify-write of a counter with a pause in between, and marks itself inside with a file only
 * one process can create. Two holders at once would lose an increment or fail to mark.
 */
import { open, readFile, rm, writeFile } from "node:fs/promises";
import { setTimeout as sleep } from "node:timers/promises";
import { withFileLock } from "./file-lock.ts";

const [lock, counter, inside, roundsText] = process.argv.slice(2);
for (let round = 0; round < Number(roundsText); round++) {
  await withFileLock(lock!, async () => {
    const marker = await open(inside!, "wx"); // throws EEXIST if another holder is inside
    await marker.close();
    const value = Number(await readFile(counter!, "utf8"));
    await sleep(1);
    await writeFile(counter!, String(value + 1));
    await rm(inside!);
  });
}
