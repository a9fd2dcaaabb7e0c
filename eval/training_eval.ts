// Accuracy during training: the training config's `eval.benchmarks` scored through the eval harness
// (eval/scorer.ts, the same prompts, generation and metrics as `vzt eval`) with the projector being trained and the
// run's reducer, every train.eval_every_steps. Items are prepared once, at the first evaluation. Metrics are logged
// as eval_<benchmark>_<primary metric> (e.g. eval_shapes_vqav2_accuracy), next to eval_loss.
import type { RunConfig } from "../configs/schema.js";
import type { PeriodicEval } from "../train/recipe.js";
import type { Run } from "../train/setup.js";
import { openBenchmarkScorer, type BenchmarkScorer } from "./scorer.js";

/** The metric name a benchmark's primary score is logged under. */
export function trainingEvalKey(benchmark: string, metric: string): string {
  return `eval_${benchmark}_${metric}`;
}

/** A PeriodicEval for `vzt train` / runTraining scoring `cfg.eval.benchmarks` (undefined when none are listed). */
export function accuracyEval(cfg: RunConfig, opts: { quiet?: boolean } = {}): PeriodicEval | undefined {
  const e = cfg.eval;
  if (e.benchmarks.length === 0) return undefined;
  let scorers: BenchmarkScorer[] | undefined;
  return {
    async evaluate(run: Run) {
      if (!scorers) {
        scorers = [];
        for (const b of e.benchmarks) {
          scorers.push(
            await openBenchmarkScorer(run.vlm, b, {
              template: run.cfg.model.template,
              limit: e.limit,
              batchSize: e.batch_size,
              maxNewTokens: e.max_new_tokens,
              stopOnNewline: e.stop_on_newline,
              preprocessMode: run.encoderOptions.preprocess?.mode ?? "clip",
              layer: run.cfg.model.vision_layer,
              quiet: opts.quiet ?? true,
            }),
          );
        }
      }
      const out: Record<string, number> = {};
      for (const s of scorers) {
        const r = await s.score(run.reducer, undefined, `eval ${s.benchmark} at step ${run.step}`);
        out[trainingEvalKey(s.benchmark, s.primary)] = r.accuracy;
      }
      return out;
    },
  };
}
