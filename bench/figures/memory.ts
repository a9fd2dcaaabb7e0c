// Figure 9: memory.
//  a. Peak RSS of the demo training run: `vzt train --config configs/demo.yaml` (the CLI itself, shortened to
//     memorySteps optimizer steps, output in os.tmpdir()) in a child process that reports its getrusage maxrss on
//     exit (rss_probe.ts preloaded with --import). Context, no target.
//  b. KV-cache bytes after a prefill of 576 + 40 vs 64 + 40 tokens on the bench decoder (keys + values held by
//     models/kv_cache.ts, measured from the tensors), and their ratio.
import { execFile } from "node:child_process";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { promisify } from "node:util";
import { tf } from "../../core/backend.js";
import type { KVCache } from "../../models/kv_cache.js";
import type { BenchContext } from "../context.js";
import { demoSets, ensureDemoAssets } from "../demo_assets.js";
import { kvCacheBytes } from "../flops.js";
import { decoderShapeOf, REAL_DEPTH } from "../models.js";
import { wasmHeapBytes } from "../machine.js";
import type { FigureResult } from "../results.js";
import { FULL_VISUAL, prefill, TEXT_TOKENS, ZIP_VISUAL } from "./prefill.js";

const execFileAsync = promisify(execFile);

/** Bytes of keys and values a cache holds (masks and positions left out). */
export function cacheBytes(cache: KVCache): number {
  let n = 0;
  for (const kv of cache.layers) if (kv) n += kv.keys.size * 4 + kv.values.size * 4;
  return n;
}

async function demoPeakRss(ctx: BenchContext): Promise<{ bytes: number; seconds: number; steps: number }> {
  const assets = await ensureDemoAssets(ctx.progress);
  const out = await mkdtemp(path.join(os.tmpdir(), "vzt-bench-mem-"));
  const rssFile = path.join(out, "rss.json");
  const steps = ctx.settings.memorySteps;
  const probe = pathToFileURL(path.join(path.dirname(fileURLToPath(import.meta.url)), "rss_probe.js")).href;
  const cli = path.join(assets.root, "dist", "cli.js");
  const sets = demoSets(assets, path.join(out, "run"), ctx.settings.backend, [`train.max_steps=${steps}`, "checkpoint.every_steps=null", "logging.progress=off"]);
  const args = ["--import", probe, cli, "train", "--config", path.join(assets.root, "configs", "demo.yaml"), ...sets.flatMap((s) => ["--set", s])];
  ctx.progress(`figure 9: demo training (${steps} steps) in a child process for its peak RSS`);
  const t0 = performance.now();
  try {
    await execFileAsync(process.execPath, args, { cwd: assets.root, env: { ...process.env, VZT_BENCH_RSS_OUT: rssFile }, maxBuffer: 16 << 20 });
    const r = JSON.parse(await readFile(rssFile, "utf8")) as { maxRssBytes: number };
    return { bytes: r.maxRssBytes, seconds: (performance.now() - t0) / 1000, steps };
  } finally {
    await rm(out, { recursive: true, force: true });
  }
}

export async function memoryFigure(ctx: BenchContext): Promise<FigureResult> {
  const lm = ctx.decoder();
  const shape = decoderShapeOf(lm.config);
  const L = lm.config.layers;
  ctx.progress(`figure 9: KV cache after prefills of ${FULL_VISUAL}+${TEXT_TOKENS} and ${ZIP_VISUAL}+${TEXT_TOKENS} tokens`);
  const measure = (visual: number): number => {
    const embeds = tf.randomNormal([1, visual + TEXT_TOKENS, shape.hidden], 0, 0.02, "float32", 31) as tf.Tensor3D;
    const cache = prefill(lm, embeds);
    const bytes = cacheBytes(cache);
    cache.dispose();
    embeds.dispose();
    return bytes;
  };
  const full = measure(FULL_VISUAL);
  const zip = measure(ZIP_VISUAL);
  const ratio = full / zip;
  const rss = await demoPeakRss(ctx);
  const mb = (b: number) => b / 1e6;
  const real = (T: number) => kvCacheBytes(shape, REAL_DEPTH.qwen2Layers, T);
  return {
    group: "memory",
    ratios: { kv_bytes_ratio: ratio },
    rows: [
      { figure: "9 demo training peak RSS", value: mb(rss.bytes), unit: "MB", target: "", shapes: `vzt train configs/demo.yaml, ${rss.steps} steps, child process (${rss.seconds.toFixed(0)} s)` },
      { figure: "9 KV bytes 576 / 64", value: ratio, target: "", shapes: `${mb(full).toFixed(2)} MB / ${mb(zip).toFixed(2)} MB, ${L} layer(s); 24-layer Qwen2-0.5B: ${mb(real(FULL_VISUAL + TEXT_TOKENS)).toFixed(1)} / ${mb(real(ZIP_VISUAL + TEXT_TOKENS)).toFixed(1)} MB` },
    ],
    details: {
      demo_peak_rss_bytes: rss.bytes,
      bench_process_wasm_heap_bytes: wasmHeapBytes(),
      demo_steps: rss.steps,
      demo_seconds: rss.seconds,
      kv_bytes: { full, zip, formula_full: kvCacheBytes(shape, L, FULL_VISUAL + TEXT_TOKENS), formula_zip: kvCacheBytes(shape, L, ZIP_VISUAL + TEXT_TOKENS) },
      kv_bytes_qwen2_0_5b_24_layers: { full: real(FULL_VISUAL + TEXT_TOKENS), zip: real(ZIP_VISUAL + TEXT_TOKENS) },
    },
  };
}
