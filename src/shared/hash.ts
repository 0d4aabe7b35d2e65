import { createHash } from "node:crypto";
import { createReadStream } from "node:fs";

export const sha256 = (data: string | Uint8Array): string => createHash("sha256").update(data).digest("hex");

export async function sha256File(path: string): Promise<string> {
  const hash = createHash("sha256");
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  return hash.digest("hex");
}
