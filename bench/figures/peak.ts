// Figure 1: the backend's large-GEMM rate, a 1024 x 1024 x 1024 float32 matMul (GFLOP/s), measured first in the run
// with bench/peak.ts. The utilisation figures divide by its median. On wasm, the rates with 1 and 2 threads are also
// measured, each in a child process (the thread count is fixed when the backend initialises), for context.
import { tf } from "../../core/backend.js";
import { measurePeakGemm, measurePeakGemmInChild } from "../peak.js";
import type { BenchContext } from "../context.js";
import { matmulFlops } from "../flops.js";
import type { FigureResult, Row } from "../results.js";
import { median, sync, timeOnce } from "../timing.js";

/**
 * The peak GEMM as a case of a paired loop: each call runs `runs` 1024^3 matMuls and records the median GFLOP/s in
 * `rates`, so utilisation can divide by the peak of the same round (the machine is shared: its speed drifts).
 */
export function gemmProbe(runs = 3, n = 1024): { run: () => Promise<void>; rates: number[]; dispose: () => void } {
  const a = tf.randomNormal([n, n], 0, 1, "float32", 3);
  const b = tf.randomNormal([n, n], 0, 1, "float32", 4);
  const rates: number[] = [];
  const once = () => {
    const c = tf.matMul(a, b);
    sync(c);
    c.dispose();
  };
  return {
    rates,
    async run() {
      const r: number[] = [];
      for (let i = 0; i < runs; i++) r.push(matmulFlops(n, n, n) / 1e6 / (await timeOnce(once)));
      rates.push(median(r));
    },
    dispose: () => tf.dispose([a, b]),
  };
}

export async function peakFigure(ctx: BenchContext): Promise<FigureResult> {
  const n = 1024;
  const repeats = ctx.settings.quick ? 8 : 20;
  ctx.progress(`figure 1: ${n}^3 float32 matMul x ${repeats}`);
  const p = await measurePeakGemm({ n, repeats });
  ctx.peakGflops = p.gflops;
  const toGflops = (ms: number) => matmulFlops(n, n, n) / 1e6 / ms;
  // GFLOP/s: median from the median time; min from the slowest run, max from the fastest.
  const stats = { median: p.gflops, min: toGflops(p.msMax), max: toGflops(p.msMin), n: repeats };
  const rows: Row[] = [{ figure: "1 peak GEMM", value: p.gflops, unit: "GFLOP/s", target: "", stats, shapes: `[${n},${n}]x[${n},${n}] f32, ${p.backend}, ${p.threads} thread(s)` }];
  const threads: Record<string, unknown> = {};
  if (p.backend === "wasm") {
    for (const t of [1, 2]) {
      ctx.progress(`figure 1: the same GEMM with ${t} wasm thread(s), in a child process`);
      try {
        const c = (await measurePeakGemmInChild(t, { n, repeats: Math.max(5, repeats >> 1), backend: "wasm" })).peak;
        threads[String(t)] = c;
        rows.push({ figure: `1 peak GEMM, ${t} thread(s)`, value: c.gflops, unit: "GFLOP/s", target: "", stats: { median: c.gflops, min: toGflops(c.msMax), max: toGflops(c.msMin), n: 0 }, shapes: `child process, VZT_THREADS=${t} (${c.threads} in use)` });
      } catch (e) {
        threads[String(t)] = { error: (e as Error).message.split("\n")[0] };
      }
    }
  }
  return {
    group: "peak",
    peakGflops: p.gflops,
    ratios: {},
    rows,
    details: { n, repeats, this_process: p, by_threads: threads, flops: matmulFlops(n, n, n) },
  };
}
