import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { LIMITS, manifestBytes, parsePithManifest, PITH_CONFIG_MEDIA_TYPE, PITH_LAYERS, sha256Digest } from "./artifact.ts";

const d = (n: number) => sha256Digest(String(n));
const config = { mediaType: PITH_CONFIG_MEDIA_TYPE, digest: d(0), size: 10 };
const layers = [
  { role: "disk" as const, digest: d(3), size: 30 },
  { role: "kernel" as const, digest: d(1), size: 10 },
  { role: "rootfs" as const, digest: d(2), size: 20 },
];
const good = () => JSON.parse(manifestBytes(config, layers, d(9)).toString()) as Record<string, unknown> & { layers: Record<string, unknown>[]; config: Record<string, unknown> };
const bytes = (value: unknown) => Buffer.from(JSON.stringify(value));

describe("the Pith artifact layout", () => {
  it("writes layers in a fixed order with Pith's media types, the same bytes every time", () => {
    const m = good();
    assert.deepEqual(m.layers.map((l) => l.mediaType), PITH_LAYERS.map((l) => l.mediaType));
    assert.deepEqual(manifestBytes(config, [...layers].reverse(), d(9)), manifestBytes(config, layers, d(9)));
    const parsed = parsePithManifest(manifestBytes(config, layers, d(9)));
    assert.deepEqual(parsed.layers.map((l) => [l.role, l.size]), [["kernel", 10], ["rootfs", 20], ["disk", 30]]);
    assert.equal(parsed.imageDigest, d(9));
  });

  const refusals: [string, (m: ReturnType<typeof good>) => unknown, RegExp][] = [
    ["an image index", (m) => ({ ...m, mediaType: "application/vnd.oci.image.index.v1+json" }), /not an OCI image manifest/],
    ["a container image", (m) => ({ ...m, config: { ...m.config, mediaType: "application/vnd.oci.image.config.v1+json" } }), /not a Pith image/],
    ["schemaVersion 1", (m) => ({ ...m, schemaVersion: 1 }), /schemaVersion/],
    ["an unknown layer", (m) => ({ ...m, layers: [...m.layers.slice(0, 2), { ...m.layers[2], mediaType: "application/x-evil" }] }), /not one of Pith's/],
    ["two kernels", (m) => ({ ...m, layers: [m.layers[0], m.layers[0], m.layers[1]] }), /two kernel layers/],
    ["no rootfs", (m) => ({ ...m, layers: [m.layers[0]] }), /no rootfs layer/],
    ["too many layers", (m) => ({ ...m, layers: [...m.layers, m.layers[0]] }), /at most 3/],
    ["a path for a digest", (m) => ({ ...m, layers: [{ ...m.layers[0], digest: "sha256:../../etc/passwd" }, ...m.layers.slice(1)] }), /digest is not sha256/],
    ["a negative size", (m) => ({ ...m, layers: [{ ...m.layers[0], size: -1 }, ...m.layers.slice(1)] }), /size/],
    ["a fractional size", (m) => ({ ...m, layers: [{ ...m.layers[0], size: 1.5 }, ...m.layers.slice(1)] }), /size/],
    ["a huge kernel", (m) => ({ ...m, layers: [{ ...m.layers[0], size: LIMITS.layerBytes.kernel + 1 }, ...m.layers.slice(1)] }), /more than the/],
    ["a huge record", (m) => ({ ...m, config: { ...m.config, size: LIMITS.configBytes + 1 } }), /image record is/],
    ["no layers", (m) => ({ ...m, layers: "x" }), /no layers array/],
    ["an array", () => [], /not a JSON object/],
  ];
  for (const [what, mutate, message] of refusals) {
    it(`refuses ${what}`, () => assert.throws(() => parsePithManifest(bytes(mutate(good()))), message));
  }
  it("shows what a registry sent without its control characters", () => {
    const m = good();
    assert.throws(() => parsePithManifest(bytes({ ...m, mediaType: "x\u001b[2J\nforged log line" })), (e) => !/[\u0000-\u001f]/.test((e as Error).message) && /x\?\[2J\?forged/.test((e as Error).message));
  });
  it("refuses bytes that are not JSON", () => assert.throws(() => parsePithManifest(Buffer.from("{")), /not JSON/));
});
