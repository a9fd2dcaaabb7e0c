// LLaMA-family weight map (HF names -> our names, as data), the Component for a config (prefix, layers, shapes) so
// `vzt inspect` can classify tensor names without loading, and the load step that lays weights out for matMul.
import { tf } from "../core/backend.js";
import { loadComponent, type Component, type TensorSource, type WeightMap } from "./weights.js";
import type { LlmConfig } from "./llm_config.js";
import { blockSizes, blockWidth, splitColumns, splitRows, splitRowsTransposed } from "./blocks.js";

/** Tensors every LLaMA-family checkpoint has. `{}` is the layer index. */
export const LLM_WEIGHT_ENTRIES: Readonly<Record<string, string>> = {
  "model.embed_tokens.weight": "embed",
  "model.layers.{}.input_layernorm.weight": "layers.{}.attnNorm",
  "model.layers.{}.self_attn.q_proj.weight": "layers.{}.q.weight",
  "model.layers.{}.self_attn.k_proj.weight": "layers.{}.k.weight",
  "model.layers.{}.self_attn.v_proj.weight": "layers.{}.v.weight",
  "model.layers.{}.self_attn.o_proj.weight": "layers.{}.o.weight",
  "model.layers.{}.post_attention_layernorm.weight": "layers.{}.mlpNorm",
  "model.layers.{}.mlp.gate_proj.weight": "layers.{}.gate.weight",
  "model.layers.{}.mlp.up_proj.weight": "layers.{}.up.weight",
  "model.layers.{}.mlp.down_proj.weight": "layers.{}.down.weight",
  "model.norm.weight": "norm",
};
/** Untied output projection (absent when `tie_word_embeddings`). */
export const LM_HEAD_ENTRY: Readonly<Record<string, string>> = { "lm_head.weight": "lmHead.weight" };
/** Qwen2 (and llama `attention_bias`): q/k/v biases. */
export const QKV_BIAS_ENTRIES: Readonly<Record<string, string>> = {
  "model.layers.{}.self_attn.q_proj.bias": "layers.{}.q.bias",
  "model.layers.{}.self_attn.k_proj.bias": "layers.{}.k.bias",
  "model.layers.{}.self_attn.v_proj.bias": "layers.{}.v.bias",
};
/** llama `attention_bias`: o_proj bias. */
export const O_BIAS_ENTRY: Readonly<Record<string, string>> = { "model.layers.{}.self_attn.o_proj.bias": "layers.{}.o.bias" };
/** llama `mlp_bias`. */
export const MLP_BIAS_ENTRIES: Readonly<Record<string, string>> = {
  "model.layers.{}.mlp.gate_proj.bias": "layers.{}.gate.bias",
  "model.layers.{}.mlp.up_proj.bias": "layers.{}.up.bias",
  "model.layers.{}.mlp.down_proj.bias": "layers.{}.down.bias",
};
/** Known extras under the LLM prefix, skipped on load. */
export const LLM_IGNORE: readonly { pattern: RegExp; why: string }[] = [
  { pattern: /^model\.layers\.\d+\.self_attn\.rotary_emb\.inv_freq$/, why: "RoPE buffer, recomputed from rope_theta" },
  { pattern: /^model\.mm_projector\./, why: "LLaVA projector (original LLaVA layout), loaded by the projector" },
  { pattern: /^model\.vision_tower\./, why: "vision tower (original LLaVA layout), loaded by the vision tower" },
];
const TIED_LM_HEAD = { pattern: /^lm_head\.weight$/, why: "tie_word_embeddings: the output projection is embed_tokens" };

/** The weight map for a config: the shared entries plus the bias and lm_head entries the config implies. */
export function llmWeightMap(cfg: LlmConfig): WeightMap {
  return {
    family: cfg.family,
    entries: {
      ...LLM_WEIGHT_ENTRIES,
      ...(cfg.tieEmbeddings ? {} : LM_HEAD_ENTRY),
      ...(cfg.qkvBias ? QKV_BIAS_ENTRIES : {}),
      ...(cfg.oBias ? O_BIAS_ENTRY : {}),
      ...(cfg.mlpBias ? MLP_BIAS_ENTRIES : {}),
    },
    ignore: cfg.tieEmbeddings ? [...LLM_IGNORE, TIED_LM_HEAD] : LLM_IGNORE,
  };
}

/** Expected HF-layout shape ([out, in] for Linear weights) of every tensor, by our name. */
export function llmShapes(cfg: LlmConfig): Record<string, number[]> {
  const { hidden: C, heads: H, kvHeads: KV, headDim: D, intermediate: I, vocab: V } = cfg;
  const s: Record<string, number[]> = { embed: [V, C], norm: [C], "lmHead.weight": [V, C] };
  for (let l = 0; l < cfg.layers; l++) {
    const p = `layers.${l}.`;
    Object.assign(s, {
      [p + "attnNorm"]: [C], [p + "mlpNorm"]: [C],
      [p + "q.weight"]: [H * D, C], [p + "k.weight"]: [KV * D, C], [p + "v.weight"]: [KV * D, C], [p + "o.weight"]: [C, H * D],
      [p + "q.bias"]: [H * D], [p + "k.bias"]: [KV * D], [p + "v.bias"]: [KV * D], [p + "o.bias"]: [C],
      [p + "gate.weight"]: [I, C], [p + "up.weight"]: [I, C], [p + "down.weight"]: [C, I],
      [p + "gate.bias"]: [I], [p + "up.bias"]: [I], [p + "down.bias"]: [C],
    });
  }
  return s;
}

/** The LLM component of a checkpoint described by `cfg` (prefix from the config's layout). */
export function llmComponent(cfg: LlmConfig): Component {
  return { map: llmWeightMap(cfg), prefix: cfg.weightPrefix, numLayers: cfg.layers, shapes: llmShapes(cfg) };
}

/** y = x·w + b with w stored [in, out]. */
export interface Linear {
  w: tf.Tensor2D; // [in, out]
  b?: tf.Tensor1D; // [out]
}

export interface DecoderLayerWeights {
  attnNorm: tf.Tensor1D; // [C]
  qkv: Linear; // [C, (H + 2KV)·D]: q, k, v fused along out
  o: Linear; // [H·D, C]
  mlpNorm: tf.Tensor1D; // [C]
  gateUp: Linear; // [C, 2I]: gate, up fused along out
  down: Linear; // [I, C]
}

export interface LlmWeights {
  embed: tf.Tensor2D; // [V, C]
  layers: DecoderLayerWeights[];
  norm: tf.Tensor1D; // [C]
  /** Untied output projection [C, V]; undefined when tied (logits use embed with transposeB). */
  lmHead?: Linear;
}

/**
 * Loads and checks the LLM tensors, then transposes Linear weights once to [in, out] (fusing q/k/v and gate/up),
 * freeing each raw tensor as soon as it is re-laid out (peak memory: the checkpoint plus one layer).
 */
export async function loadLlmWeights(source: TensorSource, cfg: LlmConfig): Promise<LlmWeights> {
  const raw = await loadComponent(source, llmComponent(cfg));
  const take = <T extends tf.Tensor | undefined>(name: string): T => {
    const t = raw.get(name);
    raw.delete(name);
    return t as T;
  };
  const fused = (p: string, parts: string[]): Linear => {
    const ws = parts.map((n) => take<tf.Tensor2D>(p + n + ".weight"));
    const bs = parts.map((n) => take<tf.Tensor1D | undefined>(p + n + ".bias"));
    const w = tf.tidy(() => (ws.length === 1 ? ws[0]! : tf.concat(ws, 0)).transpose() as tf.Tensor2D); // [in, out]
    const present = bs.filter((b): b is tf.Tensor1D => b !== undefined);
    const b = present.length === 0 ? undefined : present.length === 1 && bs.length === 1 ? present[0]! : (tf.concat(present, 0) as tf.Tensor1D);
    tf.dispose(ws);
    if (bs.length > 1) tf.dispose(present);
    return b ? { w, b } : { w };
  };
  const layers: DecoderLayerWeights[] = [];
  try {
    for (let l = 0; l < cfg.layers; l++) {
      const p = `layers.${l}.`;
      layers.push({
        attnNorm: take(p + "attnNorm"),
        qkv: fused(p, ["q", "k", "v"]), // with a bias, all three have one (qkvBias)
        o: fused(p, ["o"]),
        mlpNorm: take(p + "mlpNorm"),
        gateUp: fused(p, ["gate", "up"]),
        down: fused(p, ["down"]),
      });
    }
    const head = take<tf.Tensor2D | undefined>("lmHead.weight");
    const lmHead = head ? { w: tf.tidy(() => head.transpose() as tf.Tensor2D) } : undefined;
    head?.dispose();
    return { embed: take("embed"), layers, norm: take("norm"), ...(lmHead ? { lmHead } : {}) };
  } catch (e) {
    for (const t of raw.values()) t.dispose();
    for (const l of layers) disposeLayer(l);
    throw e;
  }
}

/** Frees every tensor of a loaded LLM. */
export function disposeLlmWeights(w: LlmWeights): void {
  w.embed.dispose();
  w.norm.dispose();
  disposeLinear(w.lmHead);
  for (const l of w.layers) disposeLayer(l);
}

function disposeLinear(x: Linear | undefined): void {
  x?.w.dispose();
  x?.b?.dispose();
}

function disposeLayer(l: DecoderLayerWeights): void {
  l.attnNorm.dispose();
  l.mlpNorm.dispose();
  for (const x of [l.qkv, l.o, l.gateUp, l.down]) disposeLinear(x);
}

// ---- kernel layout for the wasm GEMM (models/blocks.ts) ----------------------------------------------------------

/** A Linear as column blocks: y = concat_j(x·w_j + b_j). */
export type BlockedLinear = Linear[];

/** SwiGLU MLP blocked over the intermediate width: y = Σ_j (silu(x·gate_j) ⊙ (x·up_j))·down_j (+ down bias). */
export interface BlockedMlp {
  blocks: { gate: Linear; up: Linear; down: tf.Tensor2D }[]; // [C, w], [C, w], [w, C]
  downBias?: tf.Tensor1D;
}

/** One layer's kernels in blocks; they replace (and dispose) the Linear weights of DecoderLayerWeights. */
export interface LayerKernels {
  qkv: BlockedLinear;
  o: BlockedLinear;
  mlp: BlockedMlp;
}

export interface LlmKernels {
  layers: LayerKernels[];
  /** Output projection [C, V] in column blocks: lm_head, or embedᵀ when tied. */
  head: BlockedLinear;
  /** Tied: the token embeddings are read from `head`'s columns and `embed` is disposed. */
  tied: boolean;
}

const isVariable = (t: tf.Tensor): boolean => t instanceof tf.Variable;

/** Column blocks of a Linear ([in, out] weight), each <= 1 MiB. */
function blockLinear(l: Linear, w = l.w): BlockedLinear {
  const sizes = blockSizes(w.shape[1], blockWidth(w.shape[0]));
  const ws = splitColumns(w, sizes) as tf.Tensor2D[];
  const bs = l.b ? (splitColumns(l.b, sizes) as tf.Tensor1D[]) : undefined;
  return ws.map((bw, j) => (bs ? { w: bw, b: bs[j]! } : { w: bw }));
}

function blockMlp(gateUp: Linear, down: Linear, I: number): BlockedMlp {
  const sizes = blockSizes(I, blockWidth(gateUp.w.shape[0]));
  const halves = splitColumns(gateUp.w, [I, I]) as tf.Tensor2D[];
  const hb = gateUp.b ? (splitColumns(gateUp.b, [I, I]) as tf.Tensor1D[]) : undefined;
  const gate = blockLinear(hb ? { w: halves[0]!, b: hb[0]! } : { w: halves[0]! });
  const up = blockLinear(hb ? { w: halves[1]!, b: hb[1]! } : { w: halves[1]! });
  tf.dispose([...halves, ...(hb ?? [])]);
  if (gate.length !== sizes.length) throw new Error("llama kernels: gate/up block mismatch");
  const downs = splitRows(down.w, sizes);
  return { blocks: gate.map((g, j) => ({ gate: g, up: up[j]!, down: downs[j]! })), ...(down.b ? { downBias: down.b } : {}) };
}

/**
 * Whether createLanguageModel blocks the kernels: its `blocks` option when given, else the environment variable
 * VZT_LLM_BLOCKS ("0" = off, for side-by-side measurements), else on.
 */
export function llmBlocksWanted(option?: boolean): boolean {
  return option ?? process.env.VZT_LLM_BLOCKS !== "0";
}

/**
 * Blocked kernels for the wasm backend, or undefined where they do not apply: other backends (their GEMMs do not
 * stream the packed weights per row tile), trainable weights (tf.Variable: blocks would go stale and cut the
 * gradient) and `blocks` false. The blocks *replace* the Linear kernels: every `w` of qkv / o / gateUp / down /
 * lmHead and the q/k/v, o and gate/up biases are disposed once their blocks exist (so the model holds one copy of
 * its weights), and so is a tied `embed` (its transpose is the head's blocks); the norms, an untied embed and the
 * down bias (shared with the blocks) stay.
 */
export function prepareLlmKernels(w: LlmWeights, cfg: { intermediate: number }, blocks = true): LlmKernels | undefined {
  if (!blocks || tf.getBackend() !== "wasm") return undefined;
  const all = [w.embed, ...(w.lmHead ? [w.lmHead.w] : []), ...w.layers.flatMap((l) => [l.qkv.w, l.o.w, l.gateUp.w, l.down.w])];
  if (all.some(isVariable)) return undefined;
  const layers = w.layers.map((l) => {
    const k = { qkv: blockLinear(l.qkv), o: blockLinear(l.o), mlp: blockMlp(l.gateUp, l.down, cfg.intermediate) };
    for (const x of [l.qkv, l.o, l.gateUp]) disposeLinear(x);
    l.down.w.dispose(); // l.down.b is the blocks' downBias
    return k;
  });
  let head: BlockedLinear;
  if (w.lmHead) {
    head = blockLinear(w.lmHead);
    disposeLinear(w.lmHead);
  } else {
    const V = w.embed.shape[0];
    head = splitRowsTransposed(w.embed, blockSizes(V, blockWidth(w.embed.shape[1]))).map((bw) => ({ w: bw })); // [C, w] each
    w.embed.dispose(); // token lookups read head's columns (gatherColumnBlocks)
  }
  return { layers, head, tied: !w.lmHead };
}

/** Frees blocked kernels (not the weights they were made from; a down bias is shared with the weights). */
export function disposeLlmKernels(k: LlmKernels | undefined): void {
  if (!k) return;
  const lin = (b: BlockedLinear) => b.forEach(disposeLinear);
  lin(k.head);
  for (const l of k.layers) {
    lin(l.qkv);
    lin(l.o);
    for (const b of l.mlp.blocks) {
      disposeLinear(b.gate);
      disposeLinear(b.up);
      b.down.dispose();
    }
  }
}
