// LLaMA-family decoder (LLaMA, Qwen2, the LLM inside LLaVA): token embeddings -> L x [RMSNorm -> GQA attention with
// rotate-half RoPE -> residual -> RMSNorm -> SwiGLU MLP -> residual] -> final RMSNorm -> lm_head (or tied embeddings).
// Conventions follow HF transformers: hidden state indexing, position ids from the mask, left padding.
// In-LLM token reduction (FastV, TopV, keep schedules: reduce/in_llm.ts) is a value passed into the forward: the layer
// loop asks it at its decision points and runs deeper layers (and fills their caches) with the kept tokens only.
import { tf } from "../core/backend.js";
import { KVCache, type LayerKV } from "./kv_cache.js";
import {
  disposeLlmKernels, disposeLlmWeights, llmBlocksWanted, loadLlmWeights, prepareLlmKernels,
  type BlockedLinear, type BlockedMlp, type DecoderLayerWeights, type LayerKernels, type Linear, type LlmKernels, type LlmWeights,
} from "./llama_weights.js";
import { readLlmConfig, type LlmConfig } from "./llm_config.js";
import { gatherColumnBlocks } from "./blocks.js";
import { resolveModelDir } from "./hub.js";
import { openTensorSource } from "./weights.js";
import { greedyGenerate, type GenerateOptions } from "./generate.js";
import { gatherSequence, ReductionState, type Captured } from "./llm_reduction.js";
import type { DecisionPoint, InLlmReduction, ReductionTrace } from "../reduce/in_llm.js";

export interface ForwardInput {
  inputIds?: tf.Tensor2D; // [B, T] int32
  inputsEmbeds?: tf.Tensor3D; // [B, T, C]
  /** [B, T] (new tokens; the cache holds the past mask) or [B, past + T] (HF style). 1 = real, 0 = pad (left). */
  attentionMask?: tf.Tensor2D;
  /** [B, T]; default: continue each row from the cache, counting real tokens only (HF cumsum(mask) - 1). */
  positionIds?: tf.Tensor2D;
  /** Appended to (each layer's keys/values/mask); owns its tensors. */
  cache?: KVCache;
  outputHiddenStates?: boolean;
  /** Layer indices whose attention probabilities [B, H, T, T_total] are returned. */
  outputAttentions?: number[];
  /** Logits for the last position only ([B, 1, V]): what decoding needs, without the [B, T, V] prefill product. */
  lastLogitsOnly?: boolean;
  /**
   * In-LLM token reduction of a prefill (empty cache): at each of the reducer's decision layers the visual tokens it
   * drops leave the hidden states, and that layer's and deeper layers' caches. Kept tokens keep their original
   * position ids; the next position stays the original length. logits / hiddenStates / attentions then cover the
   * kept positions only (`reduction.keptPositions` in the output says which).
   */
  reduction?: InLlmReduction;
}

export interface ForwardOutput {
  logits: tf.Tensor3D; // [B, T, V] ([B, 1, V] with lastLogitsOnly)
  /** HF indexing: 0 = embeddings, i = output of layer i-1, last (index L) = final RMSNorm of the last layer's output. */
  hiddenStates?: tf.Tensor3D[];
  attentions?: Map<number, tf.Tensor4D>; // layer -> [B, H, T, T_total]
  /** With `reduction`: visual tokens per layer, the decisions taken and the positions the output holds. */
  reduction?: ReductionTrace;
}

export interface LanguageModel {
  readonly config: LlmConfig;
  /**
   * The weights given to createLanguageModel. Where the kernels were blocked (wasm, plain tensors, `blocks` not
   * false) the blocks replaced its Linear tensors (qkv / o / gateUp / down / lmHead, and a tied embed), which are
   * then disposed: read them only from a model built with `{ blocks: false }` or from tf.Variable weights.
   */
  readonly weights: LlmWeights;
  forward(input: ForwardInput): ForwardOutput;
  /** Token embeddings [B, T, C], for splicing projected visual tokens. */
  embed(ids: tf.Tensor2D): tf.Tensor3D;
  newCache(): KVCache;
  generate(inputIds: number[][], opts: GenerateOptions): Promise<number[][]>;
  dispose(): void;
}

/** Loads a LLaMA-family LLM from a folder (config.json + safetensors) or anything resolveModelDir accepts. */
export async function loadLanguageModel(source: string): Promise<LanguageModel> {
  const dir = await resolveModelDir(source);
  const cfg = await readLlmConfig(dir);
  const weights = await loadLlmWeights(await openTensorSource(dir), cfg);
  return createLanguageModel(cfg, weights);
}

export interface LanguageModelOptions {
  /**
   * Split the Linear kernels into L2-sized column blocks on wasm (models/blocks.ts), replacing them. Default: on,
   * unless the environment variable VZT_LLM_BLOCKS is "0" (side-by-side measurements).
   */
  blocks?: boolean;
}

/** Wraps loaded weights as a LanguageModel (takes ownership of `weights`; see LanguageModel.weights). */
export function createLanguageModel(cfg: LlmConfig, weights: LlmWeights, opts: LanguageModelOptions = {}): LanguageModel {
  const invFreq = ropeInvFreq(cfg);
  const kernels = prepareLlmKernels(weights, cfg, llmBlocksWanted(opts.blocks)); // wasm: cache-sized blocks of the Linear kernels
  const lm: LanguageModel = {
    config: cfg,
    weights,
    forward: (input) => llmForward(cfg, weights, kernels, invFreq, input),
    embed: (ids) => tf.tidy(() => tokenEmbeddings(ids, weights, kernels)),
    newCache: () => new KVCache(cfg.layers),
    generate: (inputIds, opts) => greedyGenerate(lm, inputIds, opts),
    dispose: () => {
      invFreq.dispose();
      disposeLlmKernels(kernels);
      disposeLlmWeights(weights);
    },
  };
  return lm;
}

/** inv_freq[i] = theta^(-2i/D), i < D/2 (linear rope_scaling divides by its factor). */
export function ropeInvFreq(cfg: LlmConfig): tf.Tensor1D {
  const half = cfg.headDim / 2;
  const scale = cfg.ropeScaling?.type === "linear" ? 1 / cfg.ropeScaling.factor : 1;
  const f = Float32Array.from({ length: half }, (_, i) => scale / Math.pow(cfg.ropeTheta, (2 * i) / cfg.headDim));
  return tf.tensor1d(f, "float32");
}

/** Everything a decoder layer needs besides its weights. */
interface LayerContext {
  cfg: LlmConfig;
  cos: tf.Tensor4D; // [B, 1, T, D] (T shrinks where a reduction drops tokens)
  sin: tf.Tensor4D; // [B, 1, T, D]
  curMask: tf.Tensor2D; // [B, T] float32
  /** Additive attention bias [B, 1, T, S] for keys [past cached + T new] (causal part memoised per T and past). */
  bias(past: number, keyMask: tf.Tensor2D): tf.Tensor4D;
}

function llmForward(cfg: LlmConfig, w: LlmWeights, kernels: LlmKernels | undefined, invFreq: tf.Tensor1D, input: ForwardInput): ForwardOutput {
  if ((input.inputIds === undefined) === (input.inputsEmbeds === undefined)) {
    throw new Error("llm forward: give exactly one of inputIds [B, T] and inputsEmbeds [B, T, C]");
  }
  const [B, T] = (input.inputIds ?? input.inputsEmbeds)!.shape as number[] as [number, number];
  if (input.inputsEmbeds && input.inputsEmbeds.shape[2] !== cfg.hidden) {
    throw new Error(`llm forward: inputsEmbeds has shape [${input.inputsEmbeds.shape}] but the model's hidden size is ${cfg.hidden}`);
  }
  const cache = input.cache;
  if (cache && cache.batch !== undefined && cache.batch !== B) throw new Error(`llm forward: cache holds ${cache.batch} rows but the input has ${B}`);
  const past0 = cache?.length(0) ?? 0;
  if (input.reduction && past0 > 0) throw new Error(`llm forward: reduction "${input.reduction.reducer.name}" acts on a prefill, but the cache already holds ${past0} positions`);
  const want = new Set(input.outputAttentions ?? []);
  for (const l of want) if (!Number.isInteger(l) || l < 0 || l >= cfg.layers) throw new Error(`llm forward: outputAttentions layer ${l} is not in 0..${cfg.layers - 1}`);

  const newKV: LayerKV[] = [];
  let nextPos: tf.Tensor2D | undefined;
  let red: ReductionState | undefined;
  let out: { logits: tf.Tensor3D; hidden: tf.Tensor3D[]; attn: tf.Tensor4D[] };
  const memo: tf.Tensor[] = []; // memoised causal masks: they outlive each layer's tidy, freed after the forward
  try {
    out = tf.tidy(() => {
      const x0 = input.inputIds ? tokenEmbeddings(input.inputIds, w, kernels) : tf.cast(input.inputsEmbeds!, "float32"); // [B, T, C]
      const curMask = currentMask(input.attentionMask, B, T, past0); // [B, T]
      const base = cache?.nextPosition ?? tf.zeros([B, 1]); // [B, 1]
      let positions: tf.Tensor2D; // [B, T] float32
      if (input.positionIds) {
        positions = tf.cast(input.positionIds, "float32");
        nextPos = tf.keep(tf.slice(positions, [0, T - 1], [B, 1]).add(1));
      } else {
        const counted = tf.cumsum(curMask, 1).sub(1).add(base) as tf.Tensor2D;
        positions = tf.where(curMask.equal(0), tf.onesLike(counted), counted); // pads get 1, like HF
        nextPos = tf.keep(base.add(curMask.sum(1, true)) as tf.Tensor2D);
      }
      const [cos, sin] = ropeCosSin(positions, invFreq);
      const biases = new Map<string, tf.Tensor4D>();
      const ctx: LayerContext = {
        cfg,
        cos,
        sin,
        curMask,
        bias: (past, keyMask) => {
          const t = keyMask.shape[1] - past;
          let causal = biases.get(`${t}/${past}`);
          if (!causal) {
            causal = tf.keep(causalAllowed(t, past));
            memo.push(causal);
            biases.set(`${t}/${past}`, causal);
          }
          // allowed = causal[i, j] * keyMask[b, j]; bias 0 where allowed, -1e9 where not (finite: no NaN rows)
          return causal.mul(keyMask.expandDims(1).expandDims(1)).sub(1).mul(1e9) as tf.Tensor4D;
        },
      };
      if (input.reduction) red = new ReductionState(input.reduction, cfg.layers, B, T, curMask.dataSync());
      const { last, hidden, attn } = decoderStack(w.layers, kernels?.layers, x0, ctx, cache, want, input.outputHiddenStates === true, newKV, red);
      const normed = rmsNorm(last, w.norm, cfg.eps); // [B, T', C] (T' = T unless reduced)
      if (input.outputHiddenStates) hidden.push(normed);
      const Tout = normed.shape[1];
      const h = input.lastLogitsOnly ? (tf.slice(normed, [0, Tout - 1, 0], [B, 1, cfg.hidden]) as tf.Tensor3D) : normed;
      const logits = kernels ? blockedLinear(h, kernels.head) : w.lmHead ? linear(h, w.lmHead) : tiedLogits(h, w.embed); // [B, T, V]
      return { logits, hidden: hidden.map((t) => (t === input.inputsEmbeds ? t.clone() : t)), attn: want.size ? [...want].map((l) => attn.get(l)!) : [] };
    });
  } catch (e) {
    for (const kv of newKV) tf.dispose([kv.keys, kv.values, kv.keyMask]);
    nextPos?.dispose();
    throw e;
  } finally {
    tf.dispose(memo);
  }
  if (cache) {
    newKV.forEach((kv, l) => cache.setLayer(l, kv));
    cache.setNextPosition(nextPos!);
  } else nextPos?.dispose();
  const result: ForwardOutput = { logits: out.logits };
  if (input.outputHiddenStates) result.hiddenStates = out.hidden;
  if (want.size) result.attentions = new Map([...want].map((l, i) => [l, out.attn[i]!]));
  if (red) result.reduction = red.trace;
  return result;
}

/**
 * The layer loop. With a reduction, entering each decision layer the reducer picks the visual tokens to keep (from
 * what the layer before captured) and the sequence (hidden states, RoPE cos/sin, mask) is gathered to the kept
 * positions, order preserved. New cache entries are tf.keep'd into `newKV`.
 */
function decoderStack(
  layers: DecoderLayerWeights[],
  kernels: LayerKernels[] | undefined,
  x0: tf.Tensor3D,
  ctx: LayerContext,
  cache: KVCache | undefined,
  wantAttn: Set<number>,
  keepHidden: boolean,
  newKV: LayerKV[],
  red?: ReductionState,
): { last: tf.Tensor3D; hidden: tf.Tensor3D[]; attn: Map<number, tf.Tensor4D> } {
  const hidden: tf.Tensor3D[] = keepHidden ? [x0] : [];
  const attn = new Map<number, tf.Tensor4D>();
  const B = x0.shape[0];
  let x = x0;
  layers.forEach((lw, l) => {
    const cut = red?.decide(l);
    if (cut) {
      x = gatherSequence(x, cut.index, B, cut.length); // [B, T', C]
      ctx.cos = gatherSequence(ctx.cos, cut.index, B, cut.length, 2); // [B, 1, T', D]: original positions
      ctx.sin = gatherSequence(ctx.sin, cut.index, B, cut.length, 2);
      ctx.curMask = gatherSequence(ctx.curMask, cut.index, B, cut.length); // [B, T']
    }
    const point = red?.captureFor(l);
    // Each layer in its own tidy: its intermediates (attention scores, MLP activations) are freed as soon as it ends,
    // so memory does not grow with depth (the tape keeps what backprop needs).
    const xIn = x;
    const r = tf.tidy(() => decoderLayer(lw, kernels?.[l], xIn, ctx, cache?.layers[l], wantAttn.has(l), point && red ? { point, red } : undefined) as unknown as tf.TensorContainer) as unknown as ReturnType<typeof decoderLayer>;
    if (point) red!.store(r.captured ?? {});
    if (cache) newKV[l] = { keys: tf.keep(r.kv.keys), values: tf.keep(r.kv.values), keyMask: tf.keep(r.kv.keyMask) };
    if (wantAttn.has(l)) attn.set(l, r.probs!);
    x = r.out;
    if (keepHidden && l < layers.length - 1) hidden.push(x); // the last entry is the normed output (caller)
  });
  return { last: x, hidden, attn };
}

/**
 * One pre-norm block: x + attn(norm(x)), then + mlp(norm(.)). With `capture` (a reduction's next decision point), it
 * also returns what that decision reads, at the alive visual tokens: attention rows of the asked queries only, and/or
 * the block's input and post-attention RMSNorm output.
 */
function decoderLayer(
  lw: DecoderLayerWeights,
  lk: LayerKernels | undefined,
  x: tf.Tensor3D,
  ctx: LayerContext,
  past: LayerKV | undefined,
  wantProbs: boolean,
  capture?: { point: DecisionPoint; red: ReductionState },
): { out: tf.Tensor3D; kv: LayerKV; probs?: tf.Tensor4D; captured?: Captured } {
  const { heads: H, kvHeads: KV, headDim: D, eps } = ctx.cfg;
  const normed = rmsNorm(x, lw.attnNorm, eps);
  const qkv = lk ? blockedLinear(normed, lk.qkv) : linear(normed, lw.qkv); // [B, T, (H + 2KV)·D]
  const [qf, kf, vf] = tf.split(qkv, [H * D, KV * D, KV * D], 2) as [tf.Tensor3D, tf.Tensor3D, tf.Tensor3D];
  const q = rope(heads(qf, H, D), ctx.cos, ctx.sin); // [B, H, T, D]
  const kNew = rope(heads(kf, KV, D), ctx.cos, ctx.sin); // [B, KV, T, D]
  const vNew = heads(vf, KV, D); // [B, KV, T, D]
  const keys = past ? (tf.concat([past.keys, kNew], 2) as tf.Tensor4D) : kNew; // [B, KV, S, D]
  const values = past ? (tf.concat([past.values, vNew], 2) as tf.Tensor4D) : vNew; // [B, KV, S, D]
  const keyMask = past ? (tf.concat([past.keyMask, ctx.curMask], 1) as tf.Tensor2D) : ctx.curMask.clone(); // [B, S]
  const bias = ctx.bias(past?.keys.shape[2] ?? 0, keyMask); // [B, 1, T, S]
  const { context, probs } = groupedAttention(q, keys, values, bias, wantProbs); // [B, H, T, D]
  const [B, T] = x.shape;
  const merged = context.transpose([0, 2, 1, 3]).reshape([B, T, H * D]) as tf.Tensor3D; // [B, T, H·D]
  const h = x.add(lk ? blockedLinear(merged, lk.o) : linear(merged, lw.o)) as tf.Tensor3D; // [B, T, C]
  const mlpIn = rmsNorm(h, lw.mlpNorm, eps); // [B, T, C] post-attention RMSNorm
  const out = h.add(lk ? blockedMlp(mlpIn, lk.mlp) : swiGlu(mlpIn, lw, ctx.cfg.intermediate)) as tf.Tensor3D; // [B, T, C]
  if (!capture) return { out, kv: { keys, values, keyMask }, ...(probs ? { probs } : {}) };
  const { point, red } = capture;
  const vis = red.visualIndex(); // [B·n] flat indices of the alive visual tokens
  const n = vis.shape[0] / B;
  const captured: Captured = {};
  if (point.attention) {
    const { start, weights } = red.queries(point.attention);
    captured.scores = gatherSequence(attentionReceived(q, keys, bias, start, weights), vis, B, n); // [B, n]
  }
  if (point.hiddenIO) {
    captured.sources = gatherSequence(x, vis, B, n); // [B, n, C]
    captured.targets = gatherSequence(mlpIn, vis, B, n); // [B, n, C]
  }
  return { out, kv: { keys, values, keyMask }, ...(probs ? { probs } : {}), captured };
}

/**
 * GQA softmax attention, one 2-D matMul pair per (row, KV head): query head h = kv·G + g uses KV head kv, so the G
 * query heads of a KV head are stacked along the rows ([G·T, D]) and share one explicit kᵀ [D, S]. On wasm a batched
 * matMul runs outside XNNPACK (~5x slower than these 2-D products). The 1/sqrt(D) scale goes on q (exact for D = 64).
 */
function groupedAttention(q: tf.Tensor4D, keys: tf.Tensor4D, values: tf.Tensor4D, bias: tf.Tensor4D, wantProbs: boolean): { context: tf.Tensor4D; probs?: tf.Tensor4D } {
  const [B, H, T, D] = q.shape;
  const [, KV, S] = keys.shape;
  const G = H / KV;
  const qs = q.mul(1 / Math.sqrt(D)) as tf.Tensor4D;
  const ctxs: tf.Tensor[] = [];
  const probs: tf.Tensor[] = [];
  for (let b = 0; b < B; b++) {
    const rowBias = tf.slice(bias, [b, 0, 0, 0], [1, 1, T, S]).reshape([1, T, S]); // [1, T, S]
    for (let kv = 0; kv < KV; kv++) {
      const qg = tf.slice(qs, [b, kv * G, 0, 0], [1, G, T, D]).reshape([G * T, D]); // [G·T, D]
      const kT = tf.slice(keys, [b, kv, 0, 0], [1, 1, S, D]).reshape([S, D]).transpose(); // [D, S]
      const v = tf.slice(values, [b, kv, 0, 0], [1, 1, S, D]).reshape([S, D]); // [S, D]
      const p = tf.softmax(tf.matMul(qg, kT).reshape([G, T, S]).add(rowBias), -1); // [G, T, S]
      ctxs.push(tf.matMul(p.reshape([G * T, S]), v)); // [G·T, D]
      if (wantProbs) probs.push(p);
    }
  }
  const context = tf.stack(ctxs).reshape([B, H, T, D]) as tf.Tensor4D;
  return wantProbs ? { context, probs: tf.stack(probs).reshape([B, H, T, S]) as tf.Tensor4D } : { context };
}

/** SwiGLU: down(silu(gate(x)) ⊙ up(x)) with gate|up fused in one [C, 2I] kernel. */
function swiGlu(x: tf.Tensor3D, lw: DecoderLayerWeights, I: number): tf.Tensor3D {
  const gu = linear(x, lw.gateUp); // [B, T, 2I]
  const [gate, up] = tf.split(gu, [I, I], 2);
  return linear(gate!.mul(tf.sigmoid(gate!)).mul(up!) as tf.Tensor3D, lw.down); // [B, T, C]
}

/**
 * SwiGLU over intermediate-width blocks: Σ_j (silu(x·gate_j) ⊙ x·up_j)·down_j; never forms [B, T, I]. For a few rows
 * (decoding) the products are cheap and the ~5 µs each op costs is not: the activation then runs once on the
 * concatenated [B·T, I] and is split back to the blocks (about 80 ops instead of 115 at the Qwen2-0.5B shape).
 */
function blockedMlp(x: tf.Tensor3D, m: BlockedMlp): tf.Tensor3D {
  const [B, T, C] = x.shape;
  const x2 = x.reshape([B * T, C]);
  const gate = (blk: BlockedMlp["blocks"][number]) => blockProduct(x2, blk.gate); // [B·T, w]
  const up = (blk: BlockedMlp["blocks"][number]) => blockProduct(x2, blk.up); // [B·T, w]
  let parts: tf.Tensor2D[];
  if (B * T <= FEW_ROWS && m.blocks.length > 1) {
    const g = tf.concat(m.blocks.map(gate), 1); // [B·T, I]
    const act = g.mul(tf.sigmoid(g)).mul(tf.concat(m.blocks.map(up), 1)); // [B·T, I]
    const pieces = tf.split(act, m.blocks.map((blk) => blk.down.shape[0]), 1);
    parts = m.blocks.map((blk, j) => tf.matMul(pieces[j]!, blk.down)); // [B·T, C] each
  } else {
    parts = m.blocks.map((blk) => {
      const g = gate(blk);
      return tf.matMul(g.mul(tf.sigmoid(g)).mul(up(blk)), blk.down); // [B·T, C]
    });
  }
  const y = parts.length === 1 ? parts[0]! : tf.addN(parts);
  return (m.downBias ? y.add(m.downBias) : y).reshape([B, T, C]);
}

/** Rows up to which blockedMlp runs the activation once over all blocks. */
const FEW_ROWS = 8;

/** x2 [rows, in] · one block's kernel (+ its bias) -> [rows, width]. */
function blockProduct(x2: tf.Tensor, l: Linear): tf.Tensor2D {
  return tf.fused.matMul({ a: x2 as tf.Tensor2D, b: l.w, ...(l.b ? { bias: l.b } : {}) }) as tf.Tensor2D;
}

/** [B, T, in] · column blocks -> [B, T, out]. */
function blockedLinear(x: tf.Tensor3D, blocks: BlockedLinear): tf.Tensor3D {
  const [B, T, C] = x.shape;
  const x2 = x.reshape([B * T, C]);
  const ys = blocks.map((l) => blockProduct(x2, l));
  const y = ys.length === 1 ? ys[0]! : tf.concat(ys, 1);
  return y.reshape([B, T, y.shape[1]!]);
}

/**
 * Attention each key receives from query rows start..T-1 (a prefill: keys = the T current tokens), softmax computed
 * for those rows only, averaged over heads, then over the queries with `weights` [B, Tq]: [B, S].
 */
function attentionReceived(q: tf.Tensor4D, keys: tf.Tensor4D, bias: tf.Tensor4D, start: number, weights: tf.Tensor2D): tf.Tensor2D {
  const [B, H, T, D] = q.shape;
  const [, KV, S] = keys.shape;
  const Tq = T - start;
  const qs = tf.slice(q, [0, 0, start, 0], [B, H, Tq, D]).reshape([B, KV, (H / KV) * Tq, D]); // [B, KV, G·Tq, D]
  const scores = tf.matMul(qs, keys, false, true).reshape([B, H, Tq, S]).mul(1 / Math.sqrt(D)); // [B, H, Tq, S]
  const rows = tf.softmax(scores.add(tf.slice(bias, [0, 0, start, 0], [B, 1, Tq, S])), -1).mean(1) as tf.Tensor3D; // [B, Tq, S]
  const w = weights.div(weights.sum(1, true)).expandDims(1) as tf.Tensor3D; // [B, 1, Tq]
  return tf.matMul(w, rows).reshape([B, S]);
}

/** [B, T, n·D] -> [B, n, T, D]. */
function heads(x: tf.Tensor3D, n: number, D: number): tf.Tensor4D {
  const [B, T] = x.shape;
  return x.reshape([B, T, n, D]).transpose([0, 2, 1, 3]);
}

/** HF rotate_half RoPE: x·cos + cat(-x2, x1)·sin, x1/x2 the two halves of the head dim. */
function rope(x: tf.Tensor4D, cos: tf.Tensor4D, sin: tf.Tensor4D): tf.Tensor4D {
  const [x1, x2] = tf.split(x, 2, 3);
  const rotated = tf.concat([tf.neg(x2!), x1!], 3);
  return x.mul(cos).add(rotated.mul(sin));
}

/** cos/sin of pos·inv_freq tiled twice (emb = cat(freqs, freqs)): [B, 1, T, D] each. */
function ropeCosSin(positions: tf.Tensor2D, invFreq: tf.Tensor1D): [tf.Tensor4D, tf.Tensor4D] {
  const freqs = positions.expandDims(2).mul(invFreq.reshape([1, 1, -1])); // [B, T, D/2]
  const emb = tf.concat([freqs, freqs], 2).expandDims(1) as tf.Tensor4D; // [B, 1, T, D]
  return [tf.cos(emb), tf.sin(emb)];
}

/** [1, 1, T, past + T]: 1 where query i (at cache index past + i) may see key j (j <= past + i). */
function causalAllowed(T: number, past: number): tf.Tensor4D {
  // step(i - j + 0.5) = [j <= i] on exact small integers; wasm's broadcasting int32 lessEqual is ~10x slower.
  const j = tf.range(0, past + T, 1, "float32").reshape([1, -1]);
  const i = tf.range(past, past + T, 1, "float32").reshape([-1, 1]);
  return tf.step(tf.sub(i, j).add(0.5)).expandDims(0).expandDims(0) as tf.Tensor4D;
}

/** The mask of the new tokens [B, T] float32, from a [B, T] or HF-style [B, past + T] mask (or all ones). */
function currentMask(mask: tf.Tensor2D | undefined, B: number, T: number, past: number): tf.Tensor2D {
  if (!mask) return tf.ones([B, T]);
  const [mb, mw] = mask.shape;
  if (mb !== B || (mw !== T && mw !== past + T)) {
    throw new Error(`llm forward: attentionMask has shape [${mask.shape}] but the input is [${B}, ${T}] with ${past} cached positions (expected [${B}, ${T}] or [${B}, ${past + T}])`);
  }
  const m = tf.cast(mask, "float32");
  return mw === T ? m : tf.slice(m, [0, past], [B, T]);
}

/** RMSNorm: w · x · rsqrt(mean(x²) + eps) over the last axis. */
function rmsNorm(x: tf.Tensor3D, w: tf.Tensor1D, eps: number): tf.Tensor3D {
  return x.mul(tf.rsqrt(x.square().mean(-1, true).add(eps))).mul(w);
}

/** [B, T, in] · [in, out] (+ b) -> [B, T, out]. */
function linear(x: tf.Tensor3D, l: Linear): tf.Tensor3D {
  const [B, T, C] = x.shape;
  const y = tf.matMul(x.reshape([B * T, C]), l.w);
  return (l.b ? y.add(l.b) : y).reshape([B, T, l.w.shape[1]]);
}

/**
 * Tied output projection: [B, T, C] · embedᵀ -> [B, T, V], computed as (embed · xᵀ)ᵀ so that the transposed operand
 * is the small x (wasm runs transposed operands by copying them first: embedᵀ would be copied on every call).
 */
function tiedLogits(x: tf.Tensor3D, embed: tf.Tensor2D): tf.Tensor3D {
  const [B, T, C] = x.shape;
  return tf.transpose(tf.matMul(embed, x.reshape([B * T, C]), false, true)).reshape([B, T, embed.shape[0]]);
}

/** Embedding rows of token ids [B, T] -> [B, T, C]: from `embed`, or (tied, blocked) from the head's columns. */
function tokenEmbeddings(ids: tf.Tensor2D, w: LlmWeights, kernels: LlmKernels | undefined): tf.Tensor3D {
  const [B, T] = ids.shape;
  if (!kernels?.tied) return tf.gather(w.embed, tf.cast(ids, "int32")) as tf.Tensor as tf.Tensor3D;
  const rows = gatherColumnBlocks(kernels.head.map((l) => l.w), ids.dataSync(), "llm: token id"); // [B·T, C]
  return rows.reshape([B, T, rows.shape[1]]);
}
