export const QEMU_BINARY = "qemu-system-x86_64";
