// Figure 7: the feature cache on the demo run (configs/demo.yaml: tiny CLIP 336/14 at 577 tokens, VisionZip 54+10,
// tiny LLaMA, micro 4 x 2 = batch 8). The same batches step with visual tokens computed by the tower + reducer, and
// with them read back from the cache on disk (train/visual_tokens.ts either way), in one paired loop; the tower's
// time is measured inside the uncached step. Target: cached / uncached <= 1 - tower share + 0.05.
import { mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { GradAccumulator } from "../../train/grad_accumulator.js";
import { lrAt } from "../../train/schedule.js";
import { cleanup, setup, type Run } from "../../train/setup.js";
import { applyAccumulated, microStep, textBatchOf } from "../../train/step.js";
import { visualTokens } from "../../train/visual_tokens.js";
import type { LoaderBatch } from "../../data/loader.js";
import type { BenchContext } from "../context.js";
import { demoConfig, ensureDemoAssets } from "../demo_assets.js";
import type { FigureResult } from "../results.js";
import { pairedRatios, pairedRuns, summarize, timeOnce } from "../timing.js";

/** One optimizer step over `batches`; returns the ms spent getting visual tokens. */
async function step(run: Run, batches: readonly LoaderBatch[]): Promise<number> {
  const acc = new GradAccumulator();
  let visualMs = 0;
  let count = 0;
  try {
    for (const b of batches) {
      let visual: Awaited<ReturnType<typeof visualTokens>>;
      visualMs += await timeOnce(async () => (visual = await visualTokens(run, b)));
      try {
        count += microStep(run.vlm, visual, textBatchOf(b), acc).count;
      } finally {
        visual?.dispose();
      }
    }
    applyAccumulated(acc, count, run.optimizer, lrAt(run.step, run.schedule), run.cfg.train.max_grad_norm);
  } finally {
    acc.dispose();
  }
  return visualMs;
}

export async function cacheFigure(ctx: BenchContext): Promise<FigureResult> {
  const { repeats, warmup, backend } = ctx.settings;
  const assets = await ensureDemoAssets(ctx.progress);
  const out = await mkdtemp(path.join(os.tmpdir(), "vzt-bench-cache-"));
  let run: Run | undefined;
  try {
    run = await setup(demoConfig(assets, out, backend, ["train.feature_cache=true"]), { quiet: true });
    const r = run;
    const cache = r.cache!;
    const accumulate = run.cfg.train.global_batch_size! / run.cfg.train.micro_batch_size;
    const batches: LoaderBatch[] = [];
    for (let m = 0; m < accumulate; m++) batches.push((await run.loader.next()).value as LoaderBatch);
    // Fill the cache with these images and write it to disk, as a finished first epoch would have.
    for (const b of batches) (await visualTokens(run, b))?.dispose();
    await cache.flush();
    ctx.progress(`figure 7: demo step (batch ${batches.reduce((a, b) => a + b.batchSize, 0)}) with features computed vs cached, ${warmup} warm-up + ${repeats} paired rounds`);
    const towerMs: number[] = [];
    const { times } = await pairedRuns(
      {
        uncached: async () => {
          r.cache = undefined;
          try {
            towerMs.push(await step(r, batches));
          } finally {
            r.cache = cache;
          }
        },
        cached: () => step(r, batches),
      },
      { repeats, warmup },
    );
    const tower = towerMs.slice(warmup);
    const ratio = summarize(pairedRatios(times.cached!, times.uncached!));
    const share = summarize(pairedRatios(tower, times.uncached!));
    const limit = 1 - share.median + 0.05;
    const shapes = `demo: tiny CLIP 577 tok + VisionZip 54+10, tiny LLaMA, batch ${run.cfg.train.global_batch_size} (micro ${run.cfg.train.micro_batch_size})`;
    return {
      group: "cache",
      ratios: { cache_step_ratio: ratio.median, tower_share: share.median },
      rows: [
        { figure: "7 cached / uncached step", value: ratio.median, target: `<= ${limit.toFixed(3)} (1 - share + 0.05)`, pass: ratio.median <= limit, stats: ratio, shapes },
        { figure: "7 tower share (uncached)", value: share.median, target: "", stats: share, shapes: "tower + reducer time / uncached step time" },
        { figure: "7 uncached step", value: summarize(times.uncached!).median, unit: "ms", target: "", stats: summarize(times.uncached!), shapes },
        { figure: "7 cached step", value: summarize(times.cached!).median, unit: "ms", target: "", stats: summarize(times.cached!), shapes },
      ],
      details: {
        ms: { uncached: summarize(times.uncached!), cached: summarize(times.cached!), tower: summarize(tower) },
        per_round: { ratio: pairedRatios(times.cached!, times.uncached!), share: pairedRatios(tower, times.uncached!) },
        cache: { hits: cache.stats.hits, misses: cache.stats.misses, shards: cache.stats.shards },
        tokens_per_image: run.tokensPerImage,
      },
    };
  } finally {
    try {
      if (run) await cleanup(run);
    } finally {
      await rm(out, { recursive: true, force: true });
    }
  }
}
