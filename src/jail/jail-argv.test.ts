import assert from "node:assert/strict";
import { test } from "node:test";
import { jailArgv } from "./jail-argv.ts";

test("the jail's options come before the program, the uid drop last", () => {
  const argv = jailArgv(
    {
      uid: 970001,
      gid: 970001,
      cgroupDirs: ["/sys/fs/cgroup/memory/pith/m1", "/sys/fs/cgroup/pids/pith/m1"],
      root: "/state/root",
      links: ["/lib"],
      readOnly: ["/usr", "/images/vmlinux"],
      readWrite: ["/state/vm"],
      devices: ["/dev/kvm"],
      netns: true,
      rlimits: { nofile: 1024, fsize: 64 },
      seccomp: true,
    },
    "qemu-system-x86_64",
    ["-name", "pith:test/m1"],
  );
  assert.deepEqual(argv, [
    "--cgroup", "/sys/fs/cgroup/memory/pith/m1", "--cgroup", "/sys/fs/cgroup/pids/pith/m1",
    "--root", "/state/root", "--link", "/lib", "--ro", "/usr", "--ro", "/images/vmlinux", "--rw", "/state/vm", "--dev", "/dev/kvm",
    "--netns", "--rlimit", "nofile=1024", "--rlimit", "fsize=64", "--seccomp", "--uid", "970001", "--gid", "970001",
    "--", "qemu-system-x86_64", "-name", "pith:test/m1",
  ]);
});

test("without a root, no paths are bound; without a uid, none is dropped to", () => {
  const argv = jailArgv({ cgroupDirs: [], readOnly: ["/usr"], readWrite: ["/s"], devices: [], links: [], netns: false, rlimits: {}, seccomp: false }, "prog", []);
  assert.deepEqual(argv, ["--", "prog"]);
});

test("a volume is bound read-write, and the file-size limit grows to the largest volume", async () => {
  const { fileSizeLimit, CONSOLE_FILE_LIMIT_BYTES } = await import("./jailer.ts");
  const argv = jailArgv({ cgroupDirs: [], root: "/m/root", readOnly: ["/usr"], readWrite: ["/m/vm", "/v/data.ext4"], devices: [], links: [], netns: true, rlimits: { fsize: fileSizeLimit([{ bytes: 1 << 30 }]) }, seccomp: true }, "qemu", []);
  assert.ok(argv.join(" ").includes("--rw /v/data.ext4"));
  assert.ok(argv.join(" ").includes(`--rlimit fsize=${1 << 30}`));
  assert.equal(fileSizeLimit([]), CONSOLE_FILE_LIMIT_BYTES, "without volumes the console's limit stays");
  assert.equal(fileSizeLimit([{ bytes: 1024 }]), CONSOLE_FILE_LIMIT_BYTES);
});
