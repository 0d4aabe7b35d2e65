/**
 * The kernel inside an x86 bzImage, as the ELF `vmlinux` its decompressor would unpack. A
 * generic kernel booted the way Pith boots its own (PVH entry, no decompression at boot) needs
 * that ELF: QEMU finds the PVH entry point in its notes.
 *
 * Where the payload is comes from the boot protocol's setup header (Documentation/x86/boot.rst):
 * `setup_sects` at 0x1f1, the "HdrS" magic at 0x202, the protocol version at 0x206 (payload
 * fields since 2.08), `payload_offset` at 0x248 (from the start of the protected-mode code,
 * which follows the setup sectors) and `payload_length` at 0x24c.
 */
import { gunzipSync } from "node:zlib";
import { decodeLz4Legacy } from "./lz4-legacy.ts";

const ELF_MAGIC = Buffer.from([0x7f, 0x45, 0x4c, 0x46]);

export function bzImageKernel(image: Buffer): Buffer {
  if (image.length < 0x250 || image.toString("latin1", 0x202, 0x206) !== "HdrS") throw new Error("not a bzImage (no HdrS setup header)");
  const version = image.readUInt16LE(0x206);
  if (version < 0x208) throw new Error(`boot protocol ${version >> 8}.${version & 0xff} has no payload fields (2.08+)`);
  const setupSectors = image[0x1f1] || 4;
  const start = (setupSectors + 1) * 512 + image.readUInt32LE(0x248);
  const end = start + image.readUInt32LE(0x24c);
  if (end > image.length) throw new Error(`the payload (${start}-${end}) runs past the image's ${image.length} bytes`);
  const payload = image.subarray(start, end);

  let kernel: Buffer;
  if (payload[0] === 0x02 && payload[1] === 0x21 && payload[2] === 0x4c && payload[3] === 0x18) {
    const { data, trailer } = decodeLz4Legacy(payload);
    // The kernel's build appends the decoded size: a check that nothing was lost.
    if (trailer.length === 4 && Buffer.from(trailer).readUInt32LE(0) !== data.length) {
      throw new Error(`the payload decoded to ${data.length} bytes, but its trailer says ${Buffer.from(trailer).readUInt32LE(0)}`);
    }
    kernel = data;
  } else if (payload[0] === 0x1f && payload[1] === 0x8b) {
    kernel = gunzipSync(payload);
  } else {
    throw new Error(`the payload is compressed in a format this bench does not decode (starts ${payload.subarray(0, 4).toString("hex")}); LZ4 and gzip are supported`);
  }
  if (!kernel.subarray(0, 4).equals(ELF_MAGIC)) throw new Error("the decompressed payload is not an ELF file");
  return kernel;
}
