/**
 * The settings compared by bench/density: today's defaults ("before"), each change alone, then
 * all together. Each says what it changes and which apps it applies to (a V8 flag means nothing
 * to a static C program).
 */
import type { FragmentName } from "../../src/kernel/kernel-fragments.ts";

export interface DensityVariant {
  name: string;
  what: string;
  /** QemuHypervisor's density options. */
  tcgTranslationCacheMiB?: number;
  freePageReporting?: boolean;
  /** Guest memory instead of the manifest's `memory` (the image is unchanged). */
  memoryMiB?: number;
  /** Kernel fragments added to the image's own. */
  kernelFragments?: FragmentName[];
  /** Env for the app (NODE_OPTIONS for node's V8 flags). */
  env?: Record<string, string>;
  /** Turn KSM on for this variant's machines (and back off after). */
  ksm?: boolean;
  /** Only for apps of this runtime. */
  runtime?: "node";
}

/** Small V8 heaps: a 1 MiB young generation (node 20 allows up to 16 MiB per semi-space) and one V8 worker thread. */
export const SMALL_HEAP_NODE_OPTIONS = "--max-semi-space-size=1 --v8-pool-size=1";

export const VARIANTS: DensityVariant[] = [
  { name: "before", what: "today's defaults: tb-size=256, tickless kernel (base: NO_HZ_IDLE, HZ=100), no balloon, KSM off" },
  { name: "tb-64", what: "TCG translation cache 64 MiB", tcgTranslationCacheMiB: 64 },
  { name: "tb-32", what: "TCG translation cache 32 MiB", tcgTranslationCacheMiB: 32 },
  { name: "tb-24", what: "TCG translation cache 24 MiB", tcgTranslationCacheMiB: 24 },
  { name: "tb-16", what: "TCG translation cache 16 MiB", tcgTranslationCacheMiB: 16 },
  { name: "mem-192", what: "guest memory 192 MiB instead of the manifest's", memoryMiB: 192, runtime: "node" },
  { name: "v8-small", what: `NODE_OPTIONS=${SMALL_HEAP_NODE_OPTIONS}`, env: { NODE_OPTIONS: SMALL_HEAP_NODE_OPTIONS }, runtime: "node" },
  { name: "balloon", what: "kernel virtio-balloon + QEMU free-page-reporting=on", kernelFragments: ["balloon"], freePageReporting: true },
  { name: "ksm", what: "KSM on (1000 pages / 100 ms) while the machines run; ksmd's CPU shared among them", ksm: true },
  {
    // No kernel change; "all-kernels" adds the balloon kernel.
    name: "all",
    what: "tb-size 32, small V8 heap, KSM",
    tcgTranslationCacheMiB: 32,
    env: { NODE_OPTIONS: SMALL_HEAP_NODE_OPTIONS },
    ksm: true,
  },
  {
    name: "all-kernels",
    what: "all, with the balloon kernel and free page reporting",
    tcgTranslationCacheMiB: 32,
    freePageReporting: true,
    kernelFragments: ["balloon"],
    env: { NODE_OPTIONS: SMALL_HEAP_NODE_OPTIONS },
    ksm: true,
  },
];
