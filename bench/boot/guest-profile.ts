/**
 * Where a boot's guest time goes, by kernel function: samples the vCPU's instruction pointer
 * through QMP while a machine boots, and names each sample from the kernel's System.map.
 *
 *   npx tsx bench/boot/guest-profile.ts [--app examples/static-c] [--runs 3] [--window 50] [--top 6] [--user BINARY]
 *
 * Each run starts the app's image as Pith does (QemuHypervisor, jailed, PITH_ACCEL=tcg), connects
 * to the machine's QMP socket as soon as QEMU makes it, and asks `info registers` (HMP) in a loop
 * until the machine is ready. Every answer pauses the vCPU for a moment, so the boot runs slower
 * than unobserved; the shares are what to read, not the times. Samples in the firmware (no
 * paging), the kernel's identity-mapped entry or user space (CPL 3: init and the app) are
 * labelled so. User-space samples inside a fixed-address executable (`--user`; for a Node image,
 * the host's node, whose stripped copy the image carries) are named by its symbols and summed by
 * component: V8's builtins, deserialiser, GC, compilers, node, libuv, OpenSSL, ICU. Printed: per
 * window of `--window` ms from start() and overall, the functions seen most.
 * This is how the APIC timer calibration and the init memory poisoning were found (bench/README.md,
 * boot). Needs a kernel built since kernels keep their System.map (`pith kernel build` again, or
 * remove the kernel's cache dir). Every machine is stopped and its state dir removed.
 */
import { spawnSync } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { QemuHypervisor } from "../../src/hypervisor/qemu/qemu-hypervisor.ts";
import { QmpClient } from "../../src/hypervisor/qemu/qmp-client.ts";
import { buildImage } from "../../src/image/image-builder.ts";
import { bootFiles } from "../../src/image/image-store.ts";
import { preparedNodeBinary } from "../../src/image/node-runtime.ts";
import { kernelDir, SYSTEM_MAP } from "../../src/kernel/kernel-cache.ts";
import { loadAppManifest } from "../../src/manifest/app-manifest.ts";
import { pithRoot } from "../../src/shared/paths.ts";
import { missingForMachines } from "../../test/support/machines.ts";

const { values: flags } = parseArgs({
  options: {
    app: { type: "string", default: "examples/static-c" },
    runs: { type: "string", default: "3" },
    window: { type: "string", default: "50" },
    top: { type: "string", default: "6" },
    user: { type: "string" },
  },
});
const RUNS = Number(flags.runs);
const WINDOW_MS = Number(flags.window);
const TOP = Number(flags.top);
if (![RUNS, WINDOW_MS, TOP].every((n) => Number.isInteger(n) && n > 0)) {
  process.stderr.write(`--runs, --window and --top must be whole numbers > 0\n`);
  process.exit(2);
}
process.env.PITH_ACCEL = "tcg";

/** Text symbols sorted by address, and a lookup of the one an address falls in. */
class SymbolTable {
  private readonly addresses: bigint[] = [];
  private readonly names: string[] = [];

  constructor(rows: (readonly [bigint, string])[]) {
    for (const [address, name] of [...rows].sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0))) {
      this.addresses.push(address);
      this.names.push(name);
    }
  }

  /** From `nm` output (a kernel's System.map is one): the text symbols, whose names may hold spaces once demangled. */
  static fromNm(text: string): SymbolTable {
    return new SymbolTable(
      text.split("\n").flatMap((line) => {
        const m = /^([0-9a-f]+) [tTwW] (.+)$/.exec(line);
        return m ? [[BigInt(`0x${m[1]}`), m[2]!] as const] : [];
      }),
    );
  }

  /** The symbol at or below `address`, or undefined below the first. */
  at(address: bigint): string | undefined {
    let lo = 0;
    let hi = this.addresses.length - 1;
    if (hi < 0 || address < this.addresses[0]!) return undefined;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (this.addresses[mid]! <= address) lo = mid;
      else hi = mid - 1;
    }
    return this.names[lo]!;
  }
}

/**
 * A user-space executable that is not position-independent (node's is not): its text sits at the
 * addresses `nm` gives in every process, so a guest's user RIP inside it names a function. Images
 * carry the host's node stripped of symbols (image/node-runtime.ts); the host's own has them.
 */
class UserBinary {
  private constructor(
    readonly path: string,
    private readonly symbols: SymbolTable,
    private readonly textStart: bigint,
    private readonly textEnd: bigint,
  ) {}

  static load(path: string): UserBinary | undefined {
    const sections = spawnSync("readelf", ["-hSW", path], { encoding: "utf8" });
    if (sections.status !== 0 || !/Type:\s+EXEC/.test(sections.stdout)) return undefined; // a PIE moves from run to run
    const text = /\s\.text\s+PROGBITS\s+([0-9a-f]+)\s+[0-9a-f]+\s+([0-9a-f]+)/.exec(sections.stdout);
    const nm = spawnSync("nm", ["-n", "--defined-only", "-C", path], { encoding: "utf8", maxBuffer: 256 * 1024 * 1024 });
    if (!text || nm.status !== 0) return undefined;
    const start = BigInt(`0x${text[1]}`);
    return new UserBinary(path, SymbolTable.fromNm(nm.stdout), start, start + BigInt(`0x${text[2]}`));
  }

  nameOf(rip: bigint): string | undefined {
    return rip >= this.textStart && rip < this.textEnd ? this.symbols.at(rip) : undefined;
  }
}

/** Where a user-space sample in node's text belongs, by its function's name. */
function componentOf(demangled: string): string {
  // A template function's demangled name starts with its return type: `int v8::internal::...`.
  const name = demangled.replace(/^[\w:<>,* ]+? (?=(v8|node|cppgc|icu_\d+)::)/, "");
  if (name.startsWith("Builtins_")) return "V8 builtins (interpreter, ICs, JS built-ins)";
  if (/^v8::internal::(\w*Deserializer|Snapshot)/.test(name)) return "V8 snapshot deserialiser";
  if (/^v8::internal::(Heap|Scavenger|MarkCompact|MinorMarkCompact|Sweeper|ConcurrentMarking|MemoryAllocator|PagedSpace|NewSpace|LargeObjectSpace|MarkingVisitor|GCTracer|heap::)/.test(name)) return "V8 heap and GC";
  if (/^v8::internal::(compiler|maglev|baseline|Parser|ParserBase|PreParser|Scanner|AstValueFactory|interpreter::|Compiler|RegExp)/.test(name)) return "V8 parser and compilers (incl. regexp)";
  if (name.startsWith("v8::") || name.startsWith("cppgc::")) return "V8 runtime (other C++)";
  if (name.startsWith("node::")) return "node (C++)";
  if (name.startsWith("uv_") || name.startsWith("uv__")) return "libuv";
  if (/^(icu_\d+::|u_|ucol_|ubrk_|uloc_|ures_|udata_|ucnv_|uprv_)/.test(name)) return "ICU";
  if (/^(ossl_|OSSL_|EVP_|CRYPTO_|OPENSSL_|ERR_|BN_|bn_|RAND_|SSL_|X509|ASN1_|OBJ_|CONF_|PEM_|BIO_|EC_|ec_|RSA_|rsa_|DH_|DSA_|SHA|sha\d|aesni_|AES_|gcm_|ChaCha|chacha|Poly1305|poly1305|x25519|PKCS|a2i_|i2d_|d2i_|lh_|sk_)/.test(name)) return "OpenSSL";
  if (name.startsWith("__static_initialization_and_destruction")) return "C++ static constructors";
  return "other code in node";
}

interface Sample {
  atMs: number;
  where: string;
  /** For a user-space sample in the named binary's text: its component (componentOf). */
  component?: string;
}

/** Names one sample: the kernel's function, the user binary's, or where it ran if neither. */
function nameSample(rip: bigint, cpl: number, paging: boolean, kernel: SymbolTable, user: UserBinary | undefined): Pick<Sample, "where" | "component"> {
  if (cpl === 3) {
    const name = user?.nameOf(rip);
    return name ? { where: `[user] ${name}`, component: componentOf(name) } : { where: user ? "(user space: libraries or JIT code)" : "(user space)", ...(user ? { component: "libraries (libc, ld.so) or JIT code" } : {}) };
  }
  if (!paging) return { where: "(firmware)" };
  if (rip < 0xffff800000000000n) return { where: "(kernel entry, identity-mapped)" };
  return { where: kernel.at(rip) ?? "(kernel, unnamed)" };
}

async function sampleBoot(run: number, image: Awaited<ReturnType<typeof buildImage>>, symbols: SymbolTable, user: UserBinary | undefined): Promise<{ samples: Sample[]; readyMs: number }> {
  const hypervisor = new QemuHypervisor({ owner: "bench" });
  const stateDir = await mkdtemp(join(tmpdir(), "pith-guest-profile-"));
  const qmpPath = join(stateDir, "vm", "qmp.sock");
  const samples: Sample[] = [];
  let ready = false;
  const t0 = performance.now();
  const starting = hypervisor.start({ id: `guest-profile-${process.pid}-${run}`, stateDir, image: image.record, ...(await bootFiles(image)) });
  const sampling = (async () => {
    // The socket appears once QEMU runs; QMP serves while the guest boots.
    while (!existsSync(qmpPath) && performance.now() - t0 < 30_000) await new Promise((r) => setTimeout(r, 1));
    const qmp = await QmpClient.connect(qmpPath, 10_000, 1);
    try {
      while (!ready && performance.now() - t0 < 60_000) {
        const registers = String(await qmp.execute("human-monitor-command", { "command-line": "info registers" }));
        const rip = /RIP=([0-9a-f]+)/.exec(registers)?.[1];
        const cpl = Number(/CPL=(\d)/.exec(registers)?.[1] ?? 0);
        // CR0.PG: qboot runs unpaged; the kernel's first instructions run identity-mapped.
        const paging = (Number.parseInt(/CR0=([0-9a-f]+)/.exec(registers)?.[1] ?? "0", 16) & 0x80000000) !== 0;
        if (rip) samples.push({ atMs: performance.now() - t0, ...nameSample(BigInt(`0x${rip}`), cpl, paging, symbols, user) });
      }
    } finally {
      qmp.close();
    }
  })();
  const machine = await starting;
  try {
    const timings = await machine.whenReady();
    ready = true;
    await sampling;
    return { samples, readyMs: timings.readyMs ?? Number.NaN };
  } finally {
    ready = true;
    await sampling.catch(() => undefined);
    await machine.stop(2000).catch(() => undefined);
    await rm(stateDir, { recursive: true, force: true });
  }
}

function top(samples: Sample[]): string {
  return countBy(samples.map((s) => s.where))
    .slice(0, TOP)
    .map(([name, n]) => `${name} ${Math.round((n / samples.length) * 100)}%`)
    .join(", ");
}

async function main(): Promise<void> {
  const missing = missingForMachines();
  if (missing) return void process.stderr.write(`bench/boot/guest-profile: skipped: ${missing}\n`);
  const image = await buildImage(await loadAppManifest(join(pithRoot(), flags.app!)));
  const mapFile = join(kernelDir(image.record.kernel.configHash), SYSTEM_MAP);
  if (!existsSync(mapFile)) {
    process.stderr.write(`bench/boot/guest-profile: kernel ${image.record.kernel.configHash.slice(0, 12)} has no ${SYSTEM_MAP} (built before kernels kept one): remove ${kernelDir(image.record.kernel.configHash)} and build again\n`);
    process.exitCode = 1;
    return;
  }
  const symbols = SymbolTable.fromNm(readFileSync(mapFile, "utf8"));
  const userPath = flags.user ?? (image.record.runtime === "node" ? (await preparedNodeBinary()).hostPath : undefined);
  const user = userPath ? UserBinary.load(userPath) : undefined;
  if (userPath && !user) process.stderr.write(`bench/boot/guest-profile: cannot name user-space samples from ${userPath} (not a fixed-address executable with symbols, or no readelf/nm): they stay unnamed\n`);
  const all: Sample[] = [];
  for (let run = 0; run < RUNS; run++) {
    const { samples, readyMs } = await sampleBoot(run, image, symbols, user);
    all.push(...samples);
    process.stderr.write(`run ${run + 1}/${RUNS}: ${samples.length} samples, ready in ${readyMs} ms (observed: slower than unobserved)\n`);
  }
  const windows = new Map<number, Sample[]>();
  for (const s of all) {
    const w = Math.floor(s.atMs / WINDOW_MS);
    const inWindow = windows.get(w) ?? [];
    inWindow.push(s);
    windows.set(w, inWindow);
  }
  process.stdout.write(`${flags.app}: ${all.length} samples over ${RUNS} boots, kernel ${image.record.kernel.configHash.slice(0, 12)}\n`);
  for (const [w, samples] of [...windows.entries()].sort((a, b) => a[0] - b[0])) {
    process.stdout.write(`  ${String(w * WINDOW_MS).padStart(5)}-${String((w + 1) * WINDOW_MS).padEnd(5)} ms  n=${String(samples.length).padEnd(4)} ${top(samples)}\n`);
  }
  process.stdout.write(`  overall: ${top(all)}\n`);
  const share = (n: number): string => `${Math.round((n / all.length) * 100)}%`;
  const userSamples = all.filter((s) => s.where.startsWith("[user]") || s.where.startsWith("(user space")).length;
  const idle = all.filter((s) => s.where === "native_safe_halt").length;
  process.stdout.write(`  split: user space ${share(userSamples)}, idle (halt) ${share(idle)}, kernel and firmware ${share(all.length - userSamples - idle)}\n`);
  const inUser = all.filter((s) => s.component !== undefined);
  if (user && inUser.length > 0) {
    process.stdout.write(`  user space, ${Math.round((inUser.length / all.length) * 100)}% of all samples, by component (${user.path}):\n`);
    for (const [component, n] of countBy(inUser.map((s) => s.component!))) process.stdout.write(`    ${String(Math.round((n / inUser.length) * 100)).padStart(3)}%  ${component}\n`);
    process.stdout.write(`  user space, functions seen most: ${top(inUser)}\n`);
  }
}

function countBy(keys: string[]): [string, number][] {
  const counts = new Map<string, number>();
  for (const k of keys) counts.set(k, (counts.get(k) ?? 0) + 1);
  return [...counts.entries()].sort((a, b) => b[1] - a[1]);
}

main().catch((e: unknown) => {
  process.stderr.write(`bench/boot/guest-profile: ${e instanceof Error ? e.stack : String(e)}\n`);
  process.exitCode = 1;
});
