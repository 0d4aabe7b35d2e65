import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { isPithError } from "../shared/errors.ts";
import { useTempPithHome } from "../shared/temp-pith-home.ts";
import { imageFromArgument } from "./image-argument.ts";

describe("pith run DIR|IMAGE", () => {
  useTempPithHome("pith-image-arg-");

  it("says a missing path is a missing app directory, not an image", async () => {
    await assert.rejects(imageFromArgument("../no/such/app"), (e) => isPithError(e) && e.code === "APP_DIR_NOT_FOUND" && e.kind === "user");
  });

  for (const bad of ["Hello World", "x\u0000", "sha256:zz", "a.b"]) {
    it(`refuses ${JSON.stringify(bad)} as an image reference with a user error`, async () => {
      await assert.rejects(imageFromArgument(bad), (e) => isPithError(e) && e.code === "INVALID_IMAGE_REFERENCE" && e.kind === "user" && typeof e.hint === "string");
    });
  }

  it("looks a well-formed reference up", async () => {
    await assert.rejects(imageFromArgument("not-built"), (e) => isPithError(e) && e.code === "IMAGE_NOT_FOUND");
  });
});
