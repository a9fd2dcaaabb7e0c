// Optimizer steps of a demo training Run, as train/recipe.ts's loop runs them (loader -> visual tokens from the
// tower or the feature cache -> micro-steps -> clip + AdamW) but without logging or checkpoints, so the bench times
// the work a step consumes. Returns samples consumed.
import { lrAt } from "../train/schedule.js";
import { GradAccumulator } from "../train/grad_accumulator.js";
import type { Run } from "../train/setup.js";
import { applyAccumulated, microStep, textBatchOf } from "../train/step.js";
import { visualTokens } from "../train/visual_tokens.js";

export async function demoSteps(run: Run, steps: number): Promise<number> {
  const accumulate = run.cfg.train.global_batch_size! / run.cfg.train.micro_batch_size;
  let samples = 0;
  for (let s = 0; s < steps; s++) {
    const acc = new GradAccumulator();
    let count = 0;
    try {
      for (let m = 0; m < accumulate; m++) {
        const { value: batch } = await run.loader.next();
        if (!batch) throw new Error("bench: the demo loader ran out of batches");
        const visual = await visualTokens(run, batch);
        try {
          count += microStep(run.vlm, visual, textBatchOf(batch), acc).count;
        } finally {
          visual?.dispose();
        }
        samples += batch.batchSize;
        run.cursor = batch.cursor;
      }
      const { applied } = applyAccumulated(acc, count, run.optimizer, lrAt(run.step, run.schedule), run.cfg.train.max_grad_norm);
      if (!applied) throw new Error(`bench: demo step ${run.step + 1} had a non-finite gradient`);
      run.step++;
    } finally {
      acc.dispose();
    }
  }
  return samples;
}
