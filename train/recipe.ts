// Projector-only tuning: setup -> train -> cleanup. The vision tower and reducer run outside the gradient tape
// (or come from the feature cache); the projector is the only thing that learns; the LLM is frozen.
import type { RunConfig } from "../configs/schema.js";
import { tf } from "../core/backend.js";
import { ConfigError } from "../core/errors.js";
import { warn } from "../core/log.js";
import { projectorTensors } from "../models/projector.js";
import { saveCheckpoint } from "./checkpoint.js";
import { heldOutLoss } from "./eval_loss.js";
import { GradAccumulator } from "./grad_accumulator.js";
import { lrAt } from "./schedule.js";
import { cleanup, setup, trainStateOf, type Run, type SetupOptions } from "./setup.js";
import { applyAccumulated, microStep, textBatchOf } from "./step.js";
import { visualTokens } from "./visual_tokens.js";

export interface TrainSummary {
  steps: number;
  /** Loss of each optimizer step this session ran, in order. */
  losses: number[];
  /** tf.memory().numTensors after each step (constant in a healthy run). */
  numTensors: number[];
  lastCheckpoint?: string;
  outputDir: string;
  /** Feature cache lookups of this session (when the cache is on). */
  featureCache?: { hits: number; misses: number };
}

/** A non-finite loss or gradient: the run stops; the last good checkpoint stays the latest. */
export class NonFiniteError extends Error {
  constructor(readonly step: number, readonly batchIds: string[], what: string) {
    super(`step ${step}: ${what} is not finite; stopping (the last checkpoint is untouched). Batch ids: ${batchIds.join(", ")}`);
    this.name = "NonFiniteError";
  }
}

async function save(run: Run): Promise<string> {
  const proj = projectorTensors(run.vlm.projector, "llava");
  const opt = run.optimizer.state();
  try {
    const r = await saveCheckpoint(
      run.cfg.output_dir,
      { step: run.step, projectorTensors: proj, optimizerTensors: opt.tensors, optimizerStep: opt.step, state: { ...trainStateOf(run), step: run.step } },
      { keepLast: run.cfg.checkpoint.keep_last },
    );
    return r.dir;
  } finally {
    tf.dispose([...Object.values(proj), ...Object.values(opt.tensors)]);
  }
}

/**
 * Scores the model being trained every train.eval_every_steps (and at the end): accuracy on the config's
 * `eval.benchmarks` through the eval harness (eval/training_eval.ts accuracyEval). Passed in rather than imported,
 * so train/ does not depend on eval/.
 */
export interface PeriodicEval {
  /** Metrics to log at this step, e.g. { eval_shapes_vqav2_accuracy: 37.5 }. */
  evaluate(run: Run): Promise<Record<string, number>>;
}

export interface TrainOptions {
  /** Stop (after checkpointing) once this step is reached, even if the run has more to go. */
  stopAt?: number;
  /** Accuracy during training; required when the config lists eval.benchmarks. */
  periodicEval?: PeriodicEval;
}

/** The loop: one optimizer step = `global / micro` micro-batches, then clip, AdamW, log, checkpoint. */
export async function train(run: Run, opts: TrainOptions = {}): Promise<TrainSummary> {
  const { cfg, vlm, loader, optimizer } = run;
  if (cfg.eval.benchmarks.length > 0 && !opts.periodicEval) {
    throw new ConfigError([`eval.benchmarks: accuracy during training needs the eval harness: pass { periodicEval: accuracyEval(cfg) } (eval/training_eval.ts) to train()/runTraining(), as vzt train does`]);
  }
  const accumulate = cfg.train.global_batch_size! / cfg.train.micro_batch_size;
  const last = Math.min(run.totalSteps, opts.stopAt ?? Infinity);
  const losses: number[] = [];
  const numTensors: number[] = [];
  let lastCheckpoint: string | undefined;
  let truncated = 0;
  if (cfg.train.eval_on_start && run.step === 0) run.logger.log(0, await evaluate(run, opts.periodicEval));
  while (run.step < last) {
    const t0 = performance.now();
    const acc = new GradAccumulator();
    let lossSum = 0, count = 0, samples = 0;
    const ids: string[] = [];
    try {
      for (let m = 0; m < accumulate; m++) {
        const { value: batch } = await loader.next();
        if (!batch) break;
        const visual = await visualTokens(run, batch);
        try {
          const r = microStep(vlm, visual, textBatchOf(batch), acc);
          lossSum += r.lossSum;
          count += r.count;
        } finally {
          visual?.dispose();
        }
        samples += batch.batchSize;
        if (batch.truncated > 0 && truncated === 0) warn(`a sample among ${batch.ids.join(", ")} is longer than data.max_length (${cfg.data.max_length}) and was cut; a count follows at the end`);
        truncated += batch.truncated;
        ids.push(...batch.ids);
        run.cursor = batch.cursor;
        run.epoch = batch.epoch;
      }
      if (samples === 0) break;
      const lr = lrAt(run.step, run.schedule);
      const loss = count > 0 ? lossSum / count : 0;
      if (!Number.isFinite(loss)) throw new NonFiniteError(run.step + 1, ids, `loss (${loss})`);
      const { gradNorm, applied } = applyAccumulated(acc, count, optimizer, lr, cfg.train.max_grad_norm);
      if (!applied) throw new NonFiniteError(run.step + 1, ids, `gradient norm (${gradNorm})`);
      run.step++;
      losses.push(loss);
      const secs = (performance.now() - t0) / 1000;
      run.metrics = { loss, lr, grad_norm: gradNorm, samples_per_s: samples / secs, tokens_per_s: count / secs, visual_tokens: run.tokensPerImage, num_tensors: tf.memory().numTensors };
      const evalEvery = cfg.train.eval_every_steps;
      if (evalEvery !== null && (run.step % evalEvery === 0 || run.step === last)) Object.assign(run.metrics, await evaluate(run, opts.periodicEval));
      run.logger.log(run.step, run.metrics);
    } finally {
      acc.dispose();
    }
    const every = cfg.checkpoint.every_steps;
    if ((every !== null && run.step % every === 0) || run.step === last) lastCheckpoint = await save(run);
    numTensors.push(tf.memory().numTensors);
  }
  if (truncated > 0) warn(`${truncated} sample(s) were longer than data.max_length (${cfg.data.max_length}) tokens (visual tokens included) and were cut: raise data.max_length to train on them whole`);
  const featureCache = run.cache ? { hits: run.cache.stats.hits, misses: run.cache.stats.misses } : undefined;
  return { steps: run.step, losses, numTensors, lastCheckpoint, outputDir: cfg.output_dir, featureCache };
}

/** The held-out loss (data.eval) and the periodic accuracy (eval.benchmarks), as eval_* metrics. */
async function evaluate(run: Run, periodicEval: PeriodicEval | undefined): Promise<Record<string, number>> {
  const metrics: Record<string, number> = {};
  if (run.evalData) metrics.eval_loss = await heldOutLoss(run);
  if (periodicEval) Object.assign(metrics, await periodicEval.evaluate(run));
  return metrics;
}

/** setup -> train -> cleanup. */
export async function runTraining(cfg: RunConfig, opts: SetupOptions & TrainOptions = {}): Promise<TrainSummary> {
  const run = await setup(cfg, opts);
  try {
    return await train(run, opts);
  } finally {
    await cleanup(run);
  }
}
