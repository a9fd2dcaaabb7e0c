// One optimizer step of projector-only tuning, as functions that return plain numbers.
// The frozen vision tower and reducer run outside the gradient tape (their tokens arrive as `visual`); inside it:
// projector -> splice -> frozen LLM -> summed masked cross-entropy. Only the projector's variables get gradients.
import { tf } from "../core/backend.js";
import type { Batch } from "../data/batch.js";
import { vlmForwardFromVisual, type Vlm, type VlmTextBatch } from "../models/llava.js";
import { allFinite, clipGradNorm, globalNorm } from "./clip.js";
import { GradAccumulator } from "./grad_accumulator.js";
import { maskedCrossEntropySum } from "./loss.js";
import type { AdamW } from "./optimizer.js";

/** A collated batch's flat [B, T] arrays as the ragged-free rows the VLM forward takes. */
export function textBatchOf(b: Batch): VlmTextBatch {
  const rows = (a: Int32Array) => Array.from({ length: b.batchSize }, (_, i) => Array.from(a.subarray(i * b.seqLen, (i + 1) * b.seqLen)));
  return { inputIds: rows(b.inputIds), labels: rows(b.labels), attentionMask: rows(b.attentionMask) };
}

export interface MicroStepResult {
  /** Summed token loss of this micro-batch (divide by the accumulated count). */
  lossSum: number;
  /** Supervised tokens in this micro-batch. */
  count: number;
}

/**
 * Forward + backward of one micro-batch: adds d(summed loss)/d(projector vars) to `acc` and returns the loss sum and
 * token count. `visual` is the reducer's pre-projector tokens [B_img, T, Cv] (not disposed here).
 */
export function microStep(vlm: Vlm, visual: tf.Tensor3D | undefined, text: VlmTextBatch, acc: GradAccumulator): MicroStepResult {
  const names = Object.keys(vlm.projector.variables);
  const varList = names.map((n) => vlm.projector.variables[n]!);
  let count = 0;
  const { value, grads } = tf.variableGrads(() => {
    const out = vlmForwardFromVisual(vlm, visual, text); // logits [B, L, V]
    const labels = tf.tensor2d(out.labels!, undefined, "int32"); // [B, L], -100 off the answers
    const { sum, count: c } = maskedCrossEntropySum(out.logits, labels);
    count = c;
    return sum;
  }, varList);
  // variableGrads keys its result by the engine's variable names; map back to ours.
  const named: Record<string, tf.Tensor> = {};
  names.forEach((n, i) => (named[n] = grads[varList[i]!.name]!));
  acc.add(named);
  const lossSum = value.dataSync()[0]!;
  tf.dispose([value, ...Object.values(grads)]);
  return { lossSum, count };
}

export interface ApplyResult {
  gradNorm: number;
  /** False when the gradient was not finite: nothing was applied. */
  applied: boolean;
}

/**
 * Ends an accumulated step: grads = sum / supervised tokens, global-norm clipping, a finite check, then AdamW at `lr`.
 * A non-finite gradient is not applied (the caller stops the run).
 */
export function applyAccumulated(acc: GradAccumulator, totalCount: number, opt: AdamW, lr: number, maxGradNorm: number | null): ApplyResult {
  const grads = acc.take(totalCount > 0 ? 1 / totalCount : 0);
  try {
    if (!allFinite(grads)) return { gradNorm: NaN, applied: false };
    if (maxGradNorm === null || maxGradNorm <= 0) {
      const norm = globalNorm(grads);
      const gradNorm = norm.dataSync()[0]!;
      norm.dispose();
      opt.step(grads, lr);
      return { gradNorm, applied: true };
    }
    const clipped = clipGradNorm(grads, maxGradNorm);
    try {
      if (!Number.isFinite(clipped.norm)) return { gradNorm: clipped.norm, applied: false };
      opt.step(clipped.grads, lr);
      return { gradNorm: clipped.norm, applied: true };
    } finally {
      tf.dispose(Object.values(clipped.grads));
    }
  } finally {
    tf.dispose(Object.values(grads));
  }
}
