import assert from "node:assert/strict";
import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { before, describe, it } from "node:test";
import { isPithError } from "../shared/errors.ts";
import { useTempPithHome } from "../shared/temp-pith-home.ts";
import { digestHex, imageName, parseImageReference } from "./image-reference.ts";
import { resolveImage } from "./image-store.ts";

const DIGEST = "sha256:" + "ab".repeat(32);
const BAD = ["", ".", "..", "../x", "a/b", "/etc/passwd", "names/../../token", "x\0y", "a\\b", "Hello", "-x", "x-", "a.b", "sha256:../x", "sha256:", "a".repeat(64) + "b", "é", " x", "x "];

const isInvalidReference = (error: unknown): boolean => isPithError(error) && error.code === "INVALID_IMAGE_REFERENCE" && error.kind === "user";

describe("image references", () => {
  it("accepts a name, a full digest with or without sha256:, and a digest prefix", () => {
    assert.deepEqual(parseImageReference("hello-ts"), { text: "hello-ts", name: "hello-ts", full: false });
    assert.deepEqual(parseImageReference(DIGEST), { text: DIGEST, hex: "ab".repeat(32), full: true });
    assert.deepEqual(parseImageReference("ab".repeat(32)), { text: "ab".repeat(32), hex: "ab".repeat(32), full: true });
    // Short hex is both a name and a prefix: resolveImage tries the name first.
    assert.deepEqual(parseImageReference("abcd"), { text: "abcd", name: "abcd", hex: "abcd", full: false });
    assert.deepEqual(parseImageReference("sha256:abcd"), { text: "sha256:abcd", hex: "abcd", full: false });
  });

  for (const bad of BAD) {
    it(`refuses ${JSON.stringify(bad)} with a user error`, () => {
      assert.throws(() => parseImageReference(bad), (e) => isInvalidReference(e) && /is not an image reference/.test((e as Error).message));
    });
  }

  it("refuses a digest prefix shorter than 4 hex digits unless it is a name", () => {
    assert.throws(() => parseImageReference("sha256:abc"), isInvalidReference);
    assert.equal(parseImageReference("abc").hex, undefined);
  });

  it("gives path components only for exact names and digests", () => {
    assert.equal(digestHex(DIGEST), "ab".repeat(32));
    assert.throws(() => digestHex("sha256:abcd"), isInvalidReference);
    assert.throws(() => digestHex("../" + "ab".repeat(31)), isInvalidReference);
    assert.equal(imageName("web"), "web");
    assert.throws(() => imageName("../web"), isInvalidReference);
  });

  describe("resolveImage", () => {
    const temp = useTempPithHome("pith-ref-");
    before(async () => {
      // A file outside the store that a traversal would reach.
      await mkdir(join(temp.home(), "images", "names"), { recursive: true });
      await writeFile(join(temp.home(), "secret"), DIGEST + "\n");
    });

    it("refuses a reference with path characters before reading anything", async () => {
      await assert.rejects(resolveImage("../../secret"), isInvalidReference);
      await assert.rejects(resolveImage("x\0"), isInvalidReference);
    });

    it("still says not found for a well-formed reference", async () => {
      await assert.rejects(resolveImage("nothing-here"), (e) => isPithError(e) && e.code === "IMAGE_NOT_FOUND");
    });
  });
});
