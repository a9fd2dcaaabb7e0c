// Figure 10: no tensor growth. The training loop itself (train/recipe.ts runTraining: loader, feature cache, steps,
// logging, checkpoint at the end) on the demo recipe for growthSteps steps; TrainSummary.numTensors holds
// tf.memory().numTensors after each step. To keep 100 steps short the run trains on a 32-row shapes dataset (made in
// os.tmpdir(), deleted after) with the feature cache on, so after the first 4 steps the tower is skipped.
// Target: numTensors after the last step - after step 1 = 0.
import { mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { makeShapesData } from "../../data/make_data.js";
import { runTraining } from "../../train/recipe.js";
import type { BenchContext } from "../context.js";
import { demoConfig, ensureDemoAssets } from "../demo_assets.js";
import type { FigureResult } from "../results.js";

export async function growthFigure(ctx: BenchContext): Promise<FigureResult> {
  const steps = ctx.settings.growthSteps;
  const assets = await ensureDemoAssets(ctx.progress);
  const out = await mkdtemp(path.join(os.tmpdir(), "vzt-bench-growth-"));
  ctx.progress(`figure 10: ${steps} demo training steps (32 rows, feature cache on)`);
  const t0 = performance.now();
  try {
    const data = await makeShapesData({ out: path.join(out, "shapes"), seed: 0, train: 32, evalVqa: 2, evalPope: 2 });
    const cfg = demoConfig(assets, path.join(out, "run"), ctx.settings.backend, [
      `data.train=${data.train}`,
      `train.max_steps=${steps}`,
      "train.feature_cache=true",
      "checkpoint.every_steps=null",
      "logging.progress=off",
    ]);
    const summary = await runTraining(cfg, { quiet: true });
    const counts = summary.numTensors;
    const first = counts[0]!;
    const last = counts[counts.length - 1]!;
    const growth = last - first;
    const seconds = (performance.now() - t0) / 1000;
    return {
      group: "growth",
      ratios: { tensor_growth: growth },
      rows: [{ figure: "10 tensor growth", value: growth, unit: "tensors", target: "= 0", pass: growth === 0, shapes: `numTensors after step ${counts.length} (${last}) - after step 1 (${first}); demo recipe, ${seconds.toFixed(0)} s` }],
      details: { steps: counts.length, num_tensors: counts, max: Math.max(...counts), min: Math.min(...counts), feature_cache: summary.featureCache, seconds },
    };
  } finally {
    await rm(out, { recursive: true, force: true });
  }
}
