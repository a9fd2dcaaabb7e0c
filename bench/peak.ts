// Peak GEMM rate of the selected backend (1024^3 float32 matMul, GFLOP/s) and the rate of the model's real GEMM
// shapes; the thread count is fixed when the wasm backend initialises, so other counts are measured in a child process.
// Run: node dist/bench/peak.js [--threads N] [--n 1024] [--repeats 10] [--shapes] [--json]
//   (--threads sets VZT_THREADS for this process; the default is VZT_THREADS or the machine's core count)
import { tf, setBackend, type BackendName } from "../core/backend.js";
import { installWasmThreads, wasmThreadsInUse } from "../core/wasm_threads.js";
import { execFile } from "node:child_process";
import path from "node:path";
import { fileURLToPath } from "node:url";

export interface GemmTiming {
  shape: string; // e.g. "[577,1024]x[1024,3072]"
  gflops: number; // from the median time
  gflopsBest: number; // from the minimum time
  msMedian: number;
  msMin: number;
  msMax: number;
  threads: number;
  backend: string;
}

/** The model's GEMM shapes: CLIP-L qkv / MLP up / MLP down, Qwen2-0.5B MLP at batch 8 x 616 tokens, CLIP attention. */
export const MODEL_GEMM_SHAPES: ReadonlyArray<readonly [number[], number[]]> = [
  [[577, 1024], [1024, 3072]],
  [[577, 1024], [1024, 4096]],
  [[577, 4096], [4096, 1024]],
  [[4928, 896], [896, 4864]],
  [[16, 577, 64], [16, 64, 577]],
];

function gemmFlops(aShape: readonly number[], bShape: readonly number[]): number {
  const m = aShape[aShape.length - 2] ?? 1;
  const k = aShape[aShape.length - 1] ?? 1;
  const n = bShape[bShape.length - 1] ?? 1;
  const batch = Math.max(aShape.slice(0, -2).reduce((p, d) => p * d, 1), bShape.slice(0, -2).reduce((p, d) => p * d, 1));
  return 2 * batch * m * k * n;
}

/**
 * Times `tf.matMul(a, b)` on random float32 inputs of the given shapes (the same `b` every run, as with weights),
 * after `warmup` untimed runs; the op itself is timed (wasm and cpu kernels run synchronously).
 */
export async function measureGemm(aShape: number[], bShape: number[], opts: { repeats?: number; warmup?: number } = {}): Promise<GemmTiming> {
  const repeats = opts.repeats ?? 10;
  const warmup = opts.warmup ?? 2;
  const a = tf.randomNormal(aShape, 0, 1, "float32", 1);
  const b = tf.randomNormal(bShape, 0, 1, "float32", 2);
  const ms: number[] = [];
  try {
    for (let r = 0; r < warmup + repeats; r++) {
      const t0 = performance.now();
      const c = tf.matMul(a, b);
      c.dataSync().length; // forces lazy backends; a copy-out of the result on wasm (included: < 2% at 1024^3)
      const dt = performance.now() - t0;
      c.dispose();
      if (r >= warmup) ms.push(dt);
    }
  } finally {
    a.dispose();
    b.dispose();
  }
  ms.sort((x, y) => x - y);
  const msMedian = ms.length % 2 ? ms[ms.length >> 1]! : (ms[(ms.length >> 1) - 1]! + ms[ms.length >> 1]!) / 2;
  const msMin = ms[0]!;
  const flops = gemmFlops(aShape, bShape);
  return {
    shape: `[${aShape.join(",")}]x[${bShape.join(",")}]`,
    gflops: flops / (msMedian * 1e6),
    gflopsBest: flops / (msMin * 1e6),
    msMedian,
    msMin,
    msMax: ms[ms.length - 1]!,
    threads: tf.getBackend() === "wasm" ? wasmThreadsInUse() : 1,
    backend: tf.getBackend(),
  };
}

/** The backend's large-GEMM rate: an n x n x n float32 matMul (default 1024), median of `repeats` (default 10). */
export async function measurePeakGemm(opts: { n?: number; repeats?: number } = {}): Promise<{ gflops: number; msMedian: number; threads: number } & GemmTiming> {
  const n = opts.n ?? 1024;
  return measureGemm([n, n], [n, n], { repeats: opts.repeats ?? 10 });
}

export interface PeakReport {
  peak: GemmTiming;
  shapes: GemmTiming[];
}

/** Runs this file in a child process with VZT_THREADS=`threads` (the thread count is fixed per process). */
export function measurePeakGemmInChild(threads: number, opts: { n?: number; repeats?: number; shapes?: boolean; backend?: BackendName } = {}): Promise<PeakReport> {
  const args = [fileURLToPath(import.meta.url), "--json", "--threads", String(threads)];
  if (opts.n) args.push("--n", String(opts.n));
  if (opts.repeats) args.push("--repeats", String(opts.repeats));
  if (opts.shapes) args.push("--shapes");
  const env = { ...process.env, VZT_THREADS: String(threads), ...(opts.backend ? { VZT_BACKEND: opts.backend } : {}) };
  return new Promise((resolve, reject) => {
    execFile(process.execPath, args, { env, maxBuffer: 1 << 24 }, (err, stdout, stderr) => {
      if (err) return reject(new Error(`bench/peak child (VZT_THREADS=${threads}) failed: ${err.message}\n${stderr}`));
      try {
        resolve(JSON.parse(stdout) as PeakReport);
      } catch (e) {
        reject(new Error(`bench/peak child (VZT_THREADS=${threads}): output is not JSON: ${(e as Error).message}\n${stdout.slice(0, 500)}`));
      }
    });
  });
}

function row(t: GemmTiming): string {
  return `| ${t.shape} | ${t.threads} | ${t.msMedian.toFixed(1)} | ${t.msMin.toFixed(1)} | ${t.msMax.toFixed(1)} | ${t.gflops.toFixed(1)} | ${t.gflopsBest.toFixed(1)} |`;
}

async function main(argv: string[]): Promise<void> {
  const flag = (name: string): string | undefined => {
    const i = argv.indexOf(name);
    return i >= 0 ? argv[i + 1] : undefined;
  };
  const threads = flag("--threads");
  if (threads) process.env.VZT_THREADS = threads;
  installWasmThreads();
  const backend = await setBackend(undefined, { quiet: argv.includes("--json") });
  const repeats = Number(flag("--repeats") ?? 10);
  const peak = await measurePeakGemm({ n: Number(flag("--n") ?? 1024), repeats });
  const shapes: GemmTiming[] = [];
  if (argv.includes("--shapes")) for (const [a, b] of MODEL_GEMM_SHAPES) shapes.push(await measureGemm(a, b, { repeats: Math.max(3, Math.ceil(repeats / 2)) }));
  if (argv.includes("--json")) {
    process.stdout.write(JSON.stringify({ peak, shapes } satisfies PeakReport) + "\n");
    return;
  }
  process.stdout.write(`backend ${backend}, ${peak.threads} thread(s)\n| shape | threads | ms median | ms min | ms max | GFLOP/s (median) | GFLOP/s (best) |\n|---|---|---|---|---|---|---|\n`);
  for (const t of [peak, ...shapes]) process.stdout.write(row(t) + "\n");
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  main(process.argv.slice(2)).catch((e: unknown) => {
    process.stderr.write(`bench/peak: ${(e as Error).stack ?? String(e)}\n`);
    process.exitCode = 1;
  });
}
