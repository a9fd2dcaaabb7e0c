// FLOP counts of the benchmarked work, from the shapes alone (1 multiply-add = 2 FLOPs). Only matrix products are
// counted (the convention of GEMM rates and of MFU): layer norms, activations, softmax and RoPE are left out, so
// utilisation = these FLOPs / time / peak is a lower bound on how busy the machine is.
// Attention counts the full T x S score matrix because that is what the code computes (causal masking is an
// additive bias, not skipped work). train/dry_run.ts's prefillFlops is FastV's per-layer MAC formula (no GQA, no
// lm_head); bench figures report it next to these exact counts.
import { prefillFlops } from "../train/dry_run.js";

/** A dense [m, k] x [k, n] product. */
export function matmulFlops(m: number, k: number, n: number): number {
  return 2 * m * k * n;
}

export interface ClipShape {
  hidden: number; // C
  intermediate: number; // MLP width I
  heads: number;
  tokens: number; // N = patches + CLS
  patchSize: number;
  channels: number;
}

/** One pre-LN CLIP encoder layer on one image: fused qkv, scores, probs x V, out proj, fc1, fc2. */
export function clipLayerFlops(s: ClipShape): number {
  const { hidden: C, intermediate: I, tokens: N } = s;
  return matmulFlops(N, C, 3 * C) + 2 * matmulFlops(N, C, N) + matmulFlops(N, C, C) + matmulFlops(N, C, I) + matmulFlops(N, I, C);
}

/** Patch embedding (a P x P stride-P convolution = one [N-1, P·P·Ch] x [P·P·Ch, C] product) on one image. */
export function clipEmbedFlops(s: ClipShape): number {
  return matmulFlops(s.tokens - 1, s.patchSize * s.patchSize * s.channels, s.hidden);
}

/** The vision stack benchmarked: embedding + `layers` encoder layers, `images` images. */
export function clipStackFlops(s: ClipShape, layers: number, images = 1): number {
  return images * (clipEmbedFlops(s) + layers * clipLayerFlops(s));
}

export interface DecoderShape {
  hidden: number; // C
  heads: number; // H
  kvHeads: number; // KV
  headDim: number; // D
  intermediate: number; // I
  vocab: number; // V
}

/** One LLaMA/Qwen2 decoder layer on one row of T new tokens attending to S = past + T keys (GQA, SwiGLU). */
export function decoderLayerFlops(s: DecoderShape, T: number, past = 0): number {
  const { hidden: C, heads: H, kvHeads: KV, headDim: D, intermediate: I } = s;
  const S = past + T;
  return (
    matmulFlops(T, C, (H + 2 * KV) * D) + // fused q, k, v
    2 * H * matmulFlops(T, D, S) + // scores and probs x V, per query head
    matmulFlops(T, H * D, C) + // o_proj
    matmulFlops(T, C, 2 * I) + // fused gate, up
    matmulFlops(T, I, C) // down
  );
}

/** The output projection for `positions` positions. */
export function lmHeadFlops(s: DecoderShape, positions: number): number {
  return matmulFlops(positions, s.hidden, s.vocab);
}

/** Prefill of `batch` rows of T tokens through `layers` layers; logits of the last position only (generation). */
export function prefillStackFlops(s: DecoderShape, layers: number, T: number, batch = 1): number {
  return batch * (layers * decoderLayerFlops(s, T) + lmHeadFlops(s, 1));
}

/** FastV's formula (train/dry_run.ts prefillFlops, MACs, dense k/v) in FLOPs, for comparison with the exact count. */
export function fastvPrefillFlops(s: DecoderShape, layers: number, T: number): number {
  return 2 * prefillFlops(T, s.hidden, s.intermediate, layers);
}

export interface ProjectorShape {
  inDim: number;
  outDim: number;
}

/**
 * One projector-only training step (mlp2x_gelu projector -> frozen decoder -> loss over all T positions' logits),
 * `batch` rows of T tokens of which `visual` come from the projector. Backward of the frozen decoder computes input
 * gradients only (the LLM's weights get none): 1x the forward for each weight product, 2x for the two attention
 * products (both operands are activations), and the lm_head's input gradient. The projector's second layer needs
 * weight and input gradients (2x), the first weight gradients only (1x; its input, the visual tokens, is a leaf).
 */
export function trainStepFlops(s: DecoderShape, p: ProjectorShape, layers: number, T: number, visual: number, batch: number): number {
  const { hidden: C, heads: H, kvHeads: KV, headDim: D, intermediate: I } = s;
  const weightProducts = matmulFlops(T, C, (H + 2 * KV) * D) + matmulFlops(T, H * D, C) + matmulFlops(T, C, 2 * I) + matmulFlops(T, I, C);
  const attention = 2 * H * matmulFlops(T, D, T);
  const layer = 2 * weightProducts + 3 * attention;
  const head = 2 * lmHeadFlops(s, T);
  const proj1 = matmulFlops(visual, p.inDim, p.outDim);
  const proj2 = matmulFlops(visual, p.outDim, p.outDim);
  const projector = 2 * proj1 + 3 * proj2;
  return batch * (layers * layer + head + projector);
}

/** Bytes of a KV cache: keys and values of every layer, float32. */
export function kvCacheBytes(s: DecoderShape, layers: number, positions: number, batch = 1, bytesPerValue = 4): number {
  return 2 * layers * batch * s.kvHeads * positions * s.headDim * bytesPerValue;
}
