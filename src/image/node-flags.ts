/**
 * Node and V8 flags every Node image starts with: the one place they are decided (the argv in
 * rootfs.ts, and the V8 code cache, which V8 refuses if it was made under other V8 flags).
 * Each was measured under TCG with bench/boot/node-start.ts; see bench/README.md, boot.
 */
export const NODE_START_FLAGS: readonly string[] = [];
