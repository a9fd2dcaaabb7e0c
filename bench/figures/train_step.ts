// Figure 6: projector-only training step (train/step.ts microStep + applyAccumulated, AdamW) on the bench decoder,
// batch 8 rows of 40 text tokens around one image, with 576 vs 64 pre-projector visual tokens (CLIP-L width 1024,
// random). Target: time(576) / time(64) >= 0.8 x the FLOP ratio of the two steps (flops.ts trainStepFlops).
import { tf } from "../../core/backend.js";
import type { Vlm, VlmTextBatch } from "../../models/llava.js";
import { GradAccumulator } from "../../train/grad_accumulator.js";
import { AdamW } from "../../train/optimizer.js";
import { applyAccumulated, microStep } from "../../train/step.js";
import type { BenchContext } from "../context.js";
import { trainStepFlops } from "../flops.js";
import { benchProjector, benchVlm, clipLargeConfig, decoderShapeOf, randomVisionTower, trainTextBatch } from "../models.js";
import { wasmHeapBytes } from "../machine.js";
import type { FigureResult } from "../results.js";
import { pairedRatios, pairedRuns, summarize } from "../timing.js";
import { FULL_VISUAL, TEXT_TOKENS, ZIP_VISUAL } from "./prefill.js";

/** A batch split into micro-batches: visual rows [micro, T, Cv] and their text rows. */
export interface MicroBatch {
  visual: tf.Tensor3D;
  text: VlmTextBatch;
}

/** Splits visual [B, T, Cv] and B text rows into B / micro micro-batches (new tensors). */
export function splitMicro(visual: tf.Tensor3D, text: VlmTextBatch, micro: number): MicroBatch[] {
  const [B, T, C] = visual.shape;
  const out: MicroBatch[] = [];
  for (let b = 0; b < B; b += micro) {
    out.push({
      visual: tf.slice(visual, [b, 0, 0], [micro, T, C]),
      text: { inputIds: text.inputIds.slice(b, b + micro), ...(text.labels ? { labels: text.labels.slice(b, b + micro) } : {}) },
    });
  }
  return out;
}

/** One optimizer step: forward + backward to the projector per micro-batch (accumulated), clip at 1.0, AdamW. */
export function trainStep(vlm: Vlm, micro: readonly MicroBatch[], opt: AdamW): number {
  const acc = new GradAccumulator();
  try {
    let loss = 0;
    let count = 0;
    for (const m of micro) {
      const r = microStep(vlm, m.visual, m.text, acc);
      loss += r.lossSum;
      count += r.count;
    }
    applyAccumulated(acc, count, opt, 1e-4, 1.0);
    return loss / count;
  } finally {
    acc.dispose();
  }
}

export async function trainFigure(ctx: BenchContext): Promise<FigureResult> {
  const { trainRepeats: repeats, warmup, llmLayers: L, trainBatch: B, trainMicro } = ctx.settings;
  const lm = ctx.decoder();
  const shape = decoderShapeOf(lm.config);
  const Cv = 1024;
  // The step never calls the tower; a 1-layer stand-in keeps the Vlm type whole without holding the bench stack.
  const vlm = benchVlm(randomVisionTower(clipLargeConfig(1)), benchProjector(Cv, shape.hidden), lm);
  const opt = new AdamW(vlm.projector.variables, { weightDecay: 0 });
  const text = trainTextBatch(B, TEXT_TOKENS, shape.vocab);
  const randomSplit = (T: number, seed: number): MicroBatch[] => {
    const all = tf.randomNormal([B, T, Cv], 0, 1, "float32", seed) as tf.Tensor3D;
    const parts = splitMicro(all, text, trainMicro);
    all.dispose();
    return parts;
  };
  const full = randomSplit(FULL_VISUAL, 21);
  const zip = randomSplit(ZIP_VISUAL, 22);
  ctx.progress(`figure 6: training step, batch ${B} (micro ${trainMicro}), ${L} decoder layer(s): ${FULL_VISUAL} vs ${ZIP_VISUAL} visual + ${TEXT_TOKENS} text tokens, ${warmup} warm-up + ${repeats} paired rounds`);
  try {
    // Warm-up: one micro-batch of each case (the shapes, kernels and heap growth of the timed steps, at 1/k the cost).
    for (let w = 0; w < warmup; w++) for (const m of [full, zip]) trainStep(vlm, m.slice(0, 1), opt);
    const heap = wasmHeapBytes();
    const { times } = await pairedRuns(
      { full: () => trainStep(vlm, full, opt), zip: () => trainStep(vlm, zip, opt) },
      { repeats, warmup: 0, onRound: (r) => ctx.progress(`  train round ${r + 1}/${repeats}`) },
    );
    const p = { inDim: Cv, outDim: shape.hidden };
    const Tf = FULL_VISUAL + TEXT_TOKENS;
    const Tz = ZIP_VISUAL + TEXT_TOKENS;
    const fFull = trainStepFlops(shape, p, L, Tf, FULL_VISUAL, B);
    const fZip = trainStepFlops(shape, p, L, Tz, ZIP_VISUAL, B);
    const flopRatio = fFull / fZip;
    const speed = pairedRatios(times.full!, times.zip!);
    const s = summarize(speed);
    const gflops = times.full!.map((ms) => fFull / 1e6 / ms);
    const shapes = `B=${B} (micro ${trainMicro}), ${L} layer(s) Qwen2-0.5B shape, vocab ${shape.vocab}, mlp2x_gelu 1024->896`;
    return {
      group: "train",
      ratios: { train_speedup: s.median, train_flop_ratio: flopRatio },
      rows: [
        { figure: "6 train speedup", value: s.median, target: `>= ${(0.8 * flopRatio).toFixed(2)} (0.8 x ${flopRatio.toFixed(2)})`, pass: s.median >= 0.8 * flopRatio, stats: s, shapes: `time(${FULL_VISUAL}+${TEXT_TOKENS}) / time(${ZIP_VISUAL}+${TEXT_TOKENS}), ${shapes}` },
        { figure: "6 train FLOP ratio", value: flopRatio, target: "", shapes: `fwd + input-gradient bwd of the frozen LLM, projector grads` },
        { figure: "6 train step 576", value: summarize(times.full!).median, unit: "ms", target: "", stats: summarize(times.full!), shapes: `${(fFull / 1e9).toFixed(0)} GFLOP, ${summarize(gflops).median.toFixed(1)} GFLOP/s` },
        { figure: "6 train step 64", value: summarize(times.zip!).median, unit: "ms", target: "", stats: summarize(times.zip!), shapes: `${(fZip / 1e9).toFixed(0)} GFLOP` },
      ],
      details: {
        shapes: { ...shape, layers: L, batch: B, micro_batch: trainMicro, visual_full: FULL_VISUAL, visual_zip: ZIP_VISUAL, text_tokens: TEXT_TOKENS, projector: p },
        flops: { full: fFull, zip: fZip },
        ms: { full: summarize(times.full!), zip: summarize(times.zip!) },
        gflops_full: summarize(gflops),
        wasm_heap_bytes_after_warmup: heap,
        wasm_heap_bytes_after: wasmHeapBytes(),
        warmup: `${warmup} micro-batch(es) of each case`,
        per_round: { speedup: speed },
      },
    };
  } finally {
    tf.dispose([...full, ...zip].map((m) => m.visual));
    opt.dispose();
    vlm.projector.dispose();
    vlm.tower.dispose();
  }
}
