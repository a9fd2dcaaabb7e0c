// Figures 3 and 4 on the Qwen2-0.5B-shaped decoder (random weights, batch 1, prefill into a KV cache, logits of the
// last position only, as generation does):
//  3. utilisation of the 576 + 40 token prefill: FLOPs / time / the 1024^3 GEMM rate of the same round (target >= 0.6);
//  4. VisionZip's prefill speedup time(576 + 40) / time(64 + 40) against the FLOP ratio of the same shapes
//     (target: speedup >= 0.85 x FLOP ratio).
import { tf } from "../../core/backend.js";
import type { LanguageModel } from "../../models/llama.js";
import type { BenchContext } from "../context.js";
import { decoderLayerFlops, fastvPrefillFlops, lmHeadFlops, prefillStackFlops } from "../flops.js";
import { decoderShapeOf } from "../models.js";
import type { FigureResult } from "../results.js";
import { gemmProbe } from "./peak.js";
import { pairedRatios, pairedRuns, summarize, sync } from "../timing.js";

export const TEXT_TOKENS = 40;
export const FULL_VISUAL = 576;
export const ZIP_VISUAL = 64;

/** One prefill of inputsEmbeds [1, T, C] into a fresh cache; returns the cache (caller disposes). */
export function prefill(lm: LanguageModel, embeds: tf.Tensor3D): ReturnType<LanguageModel["newCache"]> {
  const cache = lm.newCache();
  const { logits } = lm.forward({ inputsEmbeds: embeds, cache, lastLogitsOnly: true });
  sync(logits);
  logits.dispose();
  return cache;
}

export async function prefillFigure(ctx: BenchContext): Promise<FigureResult> {
  const { repeats, warmup, llmLayers: L } = ctx.settings;
  const lm = ctx.decoder();
  const shape = decoderShapeOf(lm.config);
  const Tfull = FULL_VISUAL + TEXT_TOKENS;
  const Tzip = ZIP_VISUAL + TEXT_TOKENS;
  const full = tf.randomNormal([1, Tfull, shape.hidden], 0, 0.02, "float32", 11) as tf.Tensor3D;
  const zip = tf.randomNormal([1, Tzip, shape.hidden], 0, 0.02, "float32", 12) as tf.Tensor3D;
  const gemm = gemmProbe();
  ctx.progress(`figures 3, 4: Qwen2-0.5B-shaped decoder, ${L} layer(s), vocab ${shape.vocab}: prefill ${Tfull} vs ${Tzip} tokens, ${warmup} warm-up + ${repeats} paired rounds`);
  try {
    const { times } = await pairedRuns(
      { gemm: gemm.run, full: () => prefill(lm, full).dispose(), zip: () => prefill(lm, zip).dispose() },
      { repeats, warmup, onRound: (r) => ctx.progress(`  prefill round ${r + 1}/${repeats}`) },
    );
    const fFull = prefillStackFlops(shape, L, Tfull);
    const fZip = prefillStackFlops(shape, L, Tzip);
    const flopRatio = fFull / fZip;
    const roundPeak = gemm.rates.slice(warmup);
    const util = times.full!.map((ms, i) => fFull / 1e6 / ms / roundPeak[i]!);
    const utilVsStart = times.full!.map((ms) => fFull / 1e6 / ms / (ctx.peakGflops ?? NaN));
    const gflops = times.full!.map((ms) => fFull / 1e6 / ms);
    const speedup = pairedRatios(times.full!, times.zip!);
    const u = summarize(util);
    const s = summarize(speedup);
    const shapes = `Qwen2-0.5B shape ${L} layer(s) (896, 14/2 heads, MLP 4864, vocab ${shape.vocab}), B=1`;
    return {
      group: "prefill",
      ratios: { prefill_utilisation: u.median, prefill_speedup: s.median, prefill_flop_ratio: flopRatio },
      rows: [
        { figure: "3 prefill utilisation", value: u.median, target: ">= 0.6", pass: u.median >= 0.6, stats: u, shapes: `${Tfull} tok, ${shapes}; / peak GEMM of the same round (${summarize(roundPeak).median.toFixed(1)} GFLOP/s)` },
        { figure: "3 prefill rate", value: summarize(gflops).median, unit: "GFLOP/s", target: "", stats: summarize(gflops), shapes: `${(fFull / 1e9).toFixed(1)} GFLOP per prefill` },
        { figure: "3 prefill time 576+40", value: summarize(times.full!).median, unit: "ms", target: "", stats: summarize(times.full!), shapes },
        { figure: "4 prefill time 64+40", value: summarize(times.zip!).median, unit: "ms", target: "", stats: summarize(times.zip!), shapes },
        { figure: "4 prefill speedup", value: s.median, target: `>= ${(0.85 * flopRatio).toFixed(2)} (0.85 x ${flopRatio.toFixed(2)})`, pass: s.median >= 0.85 * flopRatio, stats: s, shapes: `time(${Tfull}) / time(${Tzip})` },
        { figure: "4 prefill FLOP ratio", value: flopRatio, target: "", shapes: `FLOPs(${Tfull}) / FLOPs(${Tzip}); FastV formula: ${(fastvPrefillFlops(shape, L, Tfull) / fastvPrefillFlops(shape, L, Tzip)).toFixed(2)}` },
      ],
      details: {
        shapes: { ...shape, layers: L, batch: 1, tokens_full: Tfull, tokens_zip: Tzip, text_tokens: TEXT_TOKENS },
        flops: { full: fFull, zip: fZip, layer_full: decoderLayerFlops(shape, Tfull), lm_head_last: lmHeadFlops(shape, 1), fastv_full: fastvPrefillFlops(shape, L, Tfull), fastv_zip: fastvPrefillFlops(shape, L, Tzip) },
        peak_gflops: ctx.peakGflops,
        round_peak_gflops: summarize(roundPeak),
        utilisation_vs_run_start_peak: summarize(utilVsStart),
        ms: { full: summarize(times.full!), zip: summarize(times.zip!) },
        per_round: { utilisation: util, speedup },
      },
    };
  } finally {
    gemm.dispose();
    tf.dispose([full, zip]);
  }
}
