// The frozen CLIP ViT vision tower (HF CLIPVisionModel / openai CLIP VisionTransformer), read top to bottom:
// patch embedding (conv P x P, stride P, no bias) -> [CLS, patches row-major] + position embedding -> pre_layrnorm
// -> L pre-LN encoder layers (x + attn(ln1(x)); x + mlp(ln2(x))). Outputs use HF `hidden_states` indexing:
// index 0 = embeddings after pre_layrnorm, index i >= 1 = output of encoder layer i-1, negative counts from the end.
// Besides the selected hidden state, forward returns what VisionZip needs from the layer that produced it: the CLS
// query row of its attention probabilities and its keys (k_proj(layer_norm1(x)) incl. bias), per head and head-mean.
// Layers after the selected one are never run, and full attention maps are never kept.
// `post_layernorm` is loaded and used only by pooled() (HF pooler_output = post_layernorm(last_hidden_state[:, 0])).
import path from "node:path";
import { tf } from "../core/backend.js";
import { ConfigError, WeightsError } from "../core/errors.js";
import { readConfigJson, JsonReader, type Json } from "./config_json.js";
import { resolveModelDir } from "./hub.js";
import { blockSizes, blockWidth, splitColumns, splitRows } from "./blocks.js";
import { gelu } from "./projector.js";
import { loadComponent, openTensorSource, type Component, type WeightMap } from "./weights.js";

export type ClipHiddenAct = "quick_gelu" | "gelu";

export interface ClipVisionConfig {
  /** config.json model_type the config came from: clip_vision_model, clip or llava. */
  modelType: string;
  hidden: number;
  intermediate: number;
  layers: number;
  heads: number;
  headDim: number;
  imageSize: number;
  patchSize: number;
  numChannels: number;
  /** (imageSize / patchSize)^2 + 1: CLS plus patches. */
  numPositions: number;
  layerNormEps: number;
  hiddenAct: ClipHiddenAct;
  /** Where the vision tensors live in the checkpoint, e.g. `vision_model.` or `vision_tower.vision_model.`. */
  prefix: string;
}

/** HF CLIPVisionConfig defaults, for keys a real config.json leaves out. */
const DEFAULTS = {
  hidden_size: 768,
  intermediate_size: 3072,
  num_hidden_layers: 12,
  num_attention_heads: 12,
  image_size: 224,
  patch_size: 32,
  hidden_act: "quick_gelu",
  layer_norm_eps: 1e-5,
  num_channels: 3,
} as const;

/** Per model_type: where the vision config sits in config.json and where its tensors sit in the checkpoint. */
const LAYOUTS: Record<string, { nested: boolean; prefix: string }> = {
  clip_vision_model: { nested: false, prefix: "vision_model." },
  clip: { nested: true, prefix: "vision_model." },
  llava: { nested: true, prefix: "vision_tower.vision_model." },
};

/** Parses a CLIP vision config from a config.json object, dispatched on `model_type`. */
export function parseClipVisionConfig(json: Json, file = "config.json"): ClipVisionConfig {
  const modelType = json.model_type;
  const layout = typeof modelType === "string" ? LAYOUTS[modelType] : undefined;
  if (!layout) {
    throw new ConfigError([`model_type: ${JSON.stringify(modelType)} has no CLIP vision tower (supported: ${Object.keys(LAYOUTS).join(", ")})`], file);
  }
  let vc: Json = json;
  if (layout.nested) {
    const v = json.vision_config;
    if (v === null || typeof v !== "object" || Array.isArray(v)) {
      const hint = modelType === "llava" && typeof json.mm_vision_tower === "string"
        ? `; this is an original LLaVA checkpoint: load its vision tower from mm_vision_tower ("${json.mm_vision_tower}")`
        : "";
      throw new ConfigError([`vision_config: required object is missing for model_type "${String(modelType)}"${hint}`], file);
    }
    vc = v as Json;
  }
  const r = new JsonReader(vc, layout.nested ? "vision_config." : "");
  const hidden = r.int("hidden_size", DEFAULTS.hidden_size);
  const intermediate = r.int("intermediate_size", DEFAULTS.intermediate_size);
  const layers = r.int("num_hidden_layers", DEFAULTS.num_hidden_layers);
  const heads = r.int("num_attention_heads", DEFAULTS.num_attention_heads);
  const imageSize = r.int("image_size", DEFAULTS.image_size);
  const patchSize = r.int("patch_size", DEFAULTS.patch_size);
  const numChannels = r.int("num_channels", DEFAULTS.num_channels);
  const layerNormEps = r.num("layer_norm_eps", DEFAULTS.layer_norm_eps);
  const hiddenAct = r.str("hidden_act", DEFAULTS.hidden_act);
  const p = layout.nested ? "vision_config." : "";
  for (const [k, v] of Object.entries({ hidden_size: hidden, intermediate_size: intermediate, num_hidden_layers: layers, num_attention_heads: heads, image_size: imageSize, patch_size: patchSize, num_channels: numChannels })) {
    if (Number.isInteger(v) && v < 1) r.problems.push(`${p}${k}: must be at least 1, got ${v}`);
  }
  if (hidden % heads !== 0) r.problems.push(`${p}hidden_size: ${hidden} is not divisible by num_attention_heads ${heads}`);
  if (imageSize % patchSize !== 0) r.problems.push(`${p}image_size: ${imageSize} is not divisible by patch_size ${patchSize}`);
  if (hiddenAct !== "quick_gelu" && hiddenAct !== "gelu") r.problems.push(`${p}hidden_act: "${hiddenAct}" is not supported (valid: quick_gelu, gelu)`);
  r.done(file);
  const grid = imageSize / patchSize;
  return {
    modelType: modelType as string,
    hidden, intermediate, layers, heads, headDim: hidden / heads, imageSize, patchSize, numChannels,
    numPositions: grid * grid + 1,
    layerNormEps, hiddenAct: hiddenAct as ClipHiddenAct, prefix: layout.prefix,
  };
}

/** Reads and parses `<dir>/config.json`. */
export async function readClipVisionConfig(dir: string): Promise<ClipVisionConfig> {
  return parseClipVisionConfig(await readConfigJson(dir), path.join(dir, "config.json"));
}

// ---- weight map -------------------------------------------------------------------------------------------------

/** HF CLIP vision names (relative to the prefix) -> our names; `{}` is the layer index. */
export const CLIP_VISION_WEIGHT_MAP: WeightMap = {
  family: "clip_vision",
  entries: {
    "embeddings.patch_embedding.weight": "patch_embed.weight",
    "embeddings.class_embedding": "class_embed",
    "embeddings.position_embedding.weight": "pos_embed",
    "pre_layrnorm.weight": "pre_norm.weight", // HF's spelling
    "pre_layrnorm.bias": "pre_norm.bias",
    "encoder.layers.{}.layer_norm1.weight": "layers.{}.norm1.weight",
    "encoder.layers.{}.layer_norm1.bias": "layers.{}.norm1.bias",
    "encoder.layers.{}.self_attn.q_proj.weight": "layers.{}.attn.q.weight",
    "encoder.layers.{}.self_attn.q_proj.bias": "layers.{}.attn.q.bias",
    "encoder.layers.{}.self_attn.k_proj.weight": "layers.{}.attn.k.weight",
    "encoder.layers.{}.self_attn.k_proj.bias": "layers.{}.attn.k.bias",
    "encoder.layers.{}.self_attn.v_proj.weight": "layers.{}.attn.v.weight",
    "encoder.layers.{}.self_attn.v_proj.bias": "layers.{}.attn.v.bias",
    "encoder.layers.{}.self_attn.out_proj.weight": "layers.{}.attn.out.weight",
    "encoder.layers.{}.self_attn.out_proj.bias": "layers.{}.attn.out.bias",
    "encoder.layers.{}.layer_norm2.weight": "layers.{}.norm2.weight",
    "encoder.layers.{}.layer_norm2.bias": "layers.{}.norm2.bias",
    "encoder.layers.{}.mlp.fc1.weight": "layers.{}.mlp.fc1.weight",
    "encoder.layers.{}.mlp.fc1.bias": "layers.{}.mlp.fc1.bias",
    "encoder.layers.{}.mlp.fc2.weight": "layers.{}.mlp.fc2.weight",
    "encoder.layers.{}.mlp.fc2.bias": "layers.{}.mlp.fc2.bias",
    "post_layernorm.weight": "post_norm.weight",
    "post_layernorm.bias": "post_norm.bias",
  },
  ignore: [{ pattern: /^embeddings\.position_ids$/, why: "position_ids buffer (older checkpoints store it as I64); positions are always 0..N-1" }],
};

/** Names outside the vision prefix that a `clip` / `llava` checkpoint holds and a vision-tower load skips (for inspect). */
export const CLIP_VISION_OUTSIDE_IGNORE: readonly { pattern: RegExp; why: string }[] = [
  { pattern: /^(text_model\.|visual_projection\.|text_projection\.|logit_scale$)/, why: "CLIP text side and contrastive head (not used by a vision tower)" },
];

/** The Component for a config: prefix, layer count and expected shapes (HF layout), for loading or classifying names. */
export function clipVisionComponent(cfg: ClipVisionConfig, prefix = cfg.prefix): Component {
  const { hidden: C, intermediate: I, patchSize: P, numChannels: Ch, numPositions: N } = cfg;
  const shapes: Record<string, number[]> = {
    "patch_embed.weight": [C, Ch, P, P],
    class_embed: [C],
    pos_embed: [N, C],
    "pre_norm.weight": [C],
    "pre_norm.bias": [C],
    "post_norm.weight": [C],
    "post_norm.bias": [C],
  };
  for (let l = 0; l < cfg.layers; l++) {
    const s = (n: string, shape: number[]) => (shapes[`layers.${l}.${n}`] = shape);
    for (const n of ["norm1", "norm2"]) {
      s(`${n}.weight`, [C]);
      s(`${n}.bias`, [C]);
    }
    for (const n of ["q", "k", "v", "out"]) {
      s(`attn.${n}.weight`, [C, C]);
      s(`attn.${n}.bias`, [C]);
    }
    s("mlp.fc1.weight", [I, C]);
    s("mlp.fc1.bias", [I]);
    s("mlp.fc2.weight", [C, I]);
    s("mlp.fc2.bias", [C]);
  }
  return { map: CLIP_VISION_WEIGHT_MAP, prefix, numLayers: cfg.layers, shapes };
}

// ---- model ------------------------------------------------------------------------------------------------------

export interface VisionForwardOptions {
  /** HF hidden_states index (default -2, LLaVA's mm_vision_select_layer); must select an encoder layer output (not 0). */
  layer?: number;
}

export interface VisionOutput {
  /** hidden_states[layer]: [B, N, C]. */
  hidden: tf.Tensor3D;
  /** CLS query row of that layer's attention probabilities (key 0 = CLS included): [B, H, N]. */
  clsAttention: tf.Tensor3D;
  /** k_proj(layer_norm1(x)) incl. bias, split per head: [B, H, N, C/H]. */
  keys: tf.Tensor4D;
  /** Mean of `keys` over heads (VisionZip's metric): [B, N, C/H]. */
  keysMean: tf.Tensor3D;
}

export interface VisionTower {
  readonly config: ClipVisionConfig;
  /** pixelValues [B, C_in, H, W] like HF pixel_values (already normalised). */
  forward(pixelValues: tf.Tensor4D, opts?: VisionForwardOptions): VisionOutput;
  /** hidden_states[layer] only, for any index 0..L (or -(L+1)..-1); runs only the layers needed. */
  hiddenState(pixelValues: tf.Tensor4D, layer: number): tf.Tensor3D;
  /** HF pooler_output: post_layernorm(last_hidden_state[:, 0]) [B, C] (runs every layer). */
  pooled(pixelValues: tf.Tensor4D): tf.Tensor2D;
  dispose(): void;
}

/**
 * One encoder layer's weights in the layout the wasm GEMM runs fastest (models/blocks.ts), prepared once at load:
 * - attention: one [C, 3D] kernel per head, columns q·scale | k | v of that head, with layer_norm1's weight and bias
 *   folded in (W' = diag(γ)·W, b' = β·W + b), so the layer norm before it is a plain normalisation;
 * - out_proj and the MLP: column blocks of <= 1 MiB; fc1 block j is paired with the matching rows of fc2, so the MLP
 *   is a sum over blocks of act(m·fc1_j + b1_j)·fc2_j and never forms the [N, I] activation; layer_norm2 folded in fc1.
 */
interface LayerWeights {
  heads: { kernel: tf.Tensor2D; bias: tf.Tensor1D }[]; // per head: [C, 3D], [3D]
  out: { kernel: tf.Tensor2D; bias: tf.Tensor1D }[]; // column blocks: [C, w], [w]
  mlp: { fc1: tf.Tensor2D; fc1Bias: tf.Tensor1D; fc2: tf.Tensor2D }[]; // [C, w], [w], [w, C]
  fc2Bias: tf.Tensor1D; // [C]
}

interface TowerWeights {
  patchFilter: tf.Tensor4D; // HWIO [P, P, C_in, C] for conv2d on NHWC
  clsPos: tf.Tensor3D; // class_embedding + position 0: [1, 1, C]
  patchPos: tf.Tensor3D; // positions 1..N-1: [1, N-1, C]
  preNorm: { w: tf.Tensor1D; b: tf.Tensor1D };
  postNorm: { w: tf.Tensor1D; b: tf.Tensor1D };
  layers: LayerWeights[];
}

/**
 * Re-lays out HF tensors into the kernel layout above. Each HF tensor that is replaced is disposed as soon as its
 * replacement exists, so loading peaks at about one layer above the checkpoint's size.
 */
function layoutWeights(cfg: ClipVisionConfig, hf: Map<string, tf.Tensor>): TowerWeights {
  const take = <T extends tf.Tensor>(name: string) => hf.get(name) as T;
  /** f's result from the named HF tensors, which are then disposed. */
  const swap = <T extends tf.Tensor>(names: string[], f: (...ts: tf.Tensor[]) => tf.Tensor): T => {
    const out = tf.tidy(() => f(...names.map((n) => take(n)))) as T;
    for (const n of names) take(n).dispose();
    return out;
  };
  const { hidden: C, heads: Hh, headDim: D, intermediate: I } = cfg;
  const scale = 1 / Math.sqrt(D);
  /** Folds a LayerNorm (γ, β) into the Linear after it: kernel [C, out] -> diag(γ)·kernel, bias -> β·kernel + bias. */
  const fold = (g: tf.Tensor1D, b: tf.Tensor1D, kernel: tf.Tensor2D, bias: tf.Tensor1D): [tf.Tensor2D, tf.Tensor1D] => [
    tf.mul(kernel, tf.reshape(g, [-1, 1])),
    tf.add(tf.reshape(tf.matMul(tf.reshape(b, [1, -1]), kernel), [-1]), bias),
  ];
  const layers: LayerWeights[] = [];
  for (let l = 0; l < cfg.layers; l++) {
    const at = (...ns: string[]) => ns.map((n) => `layers.${l}.${n}`);
    // [C, H·3D]: per head h the columns q_h·scale | k_h | v_h; then layer_norm1 folded in.
    const [qkvK, qkvB] = (() => {
      const k = swap<tf.Tensor2D>(at("attn.q.weight", "attn.k.weight", "attn.v.weight"), (q, kk, v) => {
        const perHead = (t: tf.Tensor, s = 1) => tf.reshape(tf.mul(t, s), [Hh, 1, D, C]); // [out, in] -> [H, 1, D, C]
        return tf.transpose(tf.reshape(tf.concat([perHead(q!, scale), perHead(kk!), perHead(v!)], 1), [Hh * 3 * D, C])); // [C, H·3D]
      });
      const b = swap<tf.Tensor1D>(at("attn.q.bias", "attn.k.bias", "attn.v.bias"), (q, kk, v) =>
        tf.reshape(tf.concat([tf.reshape(tf.mul(q!, scale), [Hh, 1, D]), tf.reshape(kk!, [Hh, 1, D]), tf.reshape(v!, [Hh, 1, D])], 1), [-1]));
      return [k, b] as const;
    })();
    const g1 = take<tf.Tensor1D>(`layers.${l}.norm1.weight`);
    const b1 = take<tf.Tensor1D>(`layers.${l}.norm1.bias`);
    const [hk, hb] = tf.tidy(() => fold(g1, b1, qkvK, qkvB));
    tf.dispose([qkvK, qkvB, g1, b1]);
    const headSizes = new Array<number>(Hh).fill(3 * D);
    const headK = splitColumns(hk, headSizes) as tf.Tensor2D[];
    const headB = splitColumns(hb, headSizes) as tf.Tensor1D[];
    tf.dispose([hk, hb]);

    const outK = swap<tf.Tensor2D>(at("attn.out.weight"), (w) => tf.transpose(w!)); // [C, C]
    const outB = take<tf.Tensor1D>(`layers.${l}.attn.out.bias`);
    const outSizes = blockSizes(C, blockWidth(C));
    const outKs = splitColumns(outK, outSizes) as tf.Tensor2D[];
    const outBs = splitColumns(outB, outSizes) as tf.Tensor1D[];
    tf.dispose([outK, outB]);

    const fc1K = swap<tf.Tensor2D>(at("mlp.fc1.weight"), (w) => tf.transpose(w!)); // [C, I]
    const fc1B = take<tf.Tensor1D>(`layers.${l}.mlp.fc1.bias`);
    const g2 = take<tf.Tensor1D>(`layers.${l}.norm2.weight`);
    const b2 = take<tf.Tensor1D>(`layers.${l}.norm2.bias`);
    const [f1k, f1b] = tf.tidy(() => fold(g2, b2, fc1K, fc1B));
    tf.dispose([fc1K, fc1B, g2, b2]);
    const fc2K = swap<tf.Tensor2D>(at("mlp.fc2.weight"), (w) => tf.transpose(w!)); // [I, C]
    const mlpSizes = blockSizes(I, blockWidth(C)); // fc1 [C, w] and fc2 [w, C] each <= 1 MiB
    const fc1Ks = splitColumns(f1k, mlpSizes) as tf.Tensor2D[];
    const fc1Bs = splitColumns(f1b, mlpSizes) as tf.Tensor1D[];
    const fc2Ks = splitRows(fc2K, mlpSizes);
    tf.dispose([f1k, f1b, fc2K]);
    layers.push({
      heads: headK.map((kernel, h) => ({ kernel, bias: headB[h]! })),
      out: outKs.map((kernel, j) => ({ kernel, bias: outBs[j]! })),
      mlp: fc1Ks.map((fc1, j) => ({ fc1, fc1Bias: fc1Bs[j]!, fc2: fc2Ks[j]! })),
      fc2Bias: take<tf.Tensor1D>(`layers.${l}.mlp.fc2.bias`),
    });
  }
  const pos = take<tf.Tensor2D>("pos_embed"); // [N, C]
  const patchPos = tf.tidy(() => tf.expandDims<tf.Tensor3D>(tf.slice(pos, [1, 0], [cfg.numPositions - 1, C]), 0));
  return {
    patchFilter: swap(["patch_embed.weight"], (w) => tf.transpose(w!, [2, 3, 1, 0])), // OIHW -> HWIO
    clsPos: swap(["class_embed", "pos_embed"], (c, p) => tf.reshape(tf.add(c!, tf.slice(p!, [0, 0], [1, C])), [1, 1, C])),
    patchPos,
    preNorm: { w: take<tf.Tensor1D>("pre_norm.weight"), b: take<tf.Tensor1D>("pre_norm.bias") },
    postNorm: { w: take<tf.Tensor1D>("post_norm.weight"), b: take<tf.Tensor1D>("post_norm.bias") },
    layers,
  };
}

/** (x - mean) / sqrt(var + eps) over the last axis (biased variance, like PyTorch); the affine part is folded away. */
function normalize<T extends tf.Tensor>(x: T, eps: number): T {
  return tf.tidy(() => {
    const { mean, variance } = tf.moments(x, -1, true);
    return tf.mul(tf.sub(x, mean), tf.rsqrt(tf.add(variance, eps))) as T;
  });
}

/** LayerNorm over the last axis: normalize(x) * w + b. */
function layerNorm(x: tf.Tensor3D, n: { w: tf.Tensor1D; b: tf.Tensor1D }, eps: number): tf.Tensor3D {
  return tf.tidy(() => tf.add(tf.mul(normalize(x, eps), n.w), n.b));
}

function activation(x: tf.Tensor2D, act: ClipHiddenAct): tf.Tensor2D {
  return act === "gelu" ? gelu(x) : tf.tidy(() => tf.mul(x, tf.sigmoid(tf.mul(x, 1.702)))); // quick_gelu
}

/** hidden_states[0]: patch conv -> [CLS, patches] + positions -> pre_layrnorm. */
function embed(cfg: ClipVisionConfig, w: TowerWeights, pixelValues: tf.Tensor4D): tf.Tensor3D {
  const [B, Ch, H, W] = pixelValues.shape;
  if (pixelValues.rank !== 4 || Ch !== cfg.numChannels || H !== cfg.imageSize || W !== cfg.imageSize) {
    throw new RangeError(`clip vision: pixel_values must be [B, ${cfg.numChannels}, ${cfg.imageSize}, ${cfg.imageSize}], got [${pixelValues.shape}]`);
  }
  return tf.tidy(() => {
    const nhwc = tf.transpose(pixelValues, [0, 2, 3, 1]); // [B, H, W, C_in]
    const patches = tf.conv2d(nhwc, w.patchFilter, cfg.patchSize, "valid"); // [B, H/P, W/P, C]
    const tokens = tf.add(tf.reshape(patches, [B, cfg.numPositions - 1, cfg.hidden]), w.patchPos); // [B, N-1, C]
    const cls = tf.tile(w.clsPos, [B, 1, 1]); // [B, 1, C]
    return layerNorm(tf.concat<tf.Tensor3D>([cls, tokens as tf.Tensor3D], 1), w.preNorm, cfg.layerNormEps); // [B, N, C]
  });
}

interface LayerExtras {
  clsAttention: tf.Tensor3D;
  keys: tf.Tensor4D;
  keysMean: tf.Tensor3D;
}

/**
 * One pre-LN encoder layer; with `extras`, also the CLS attention row and the per-head keys. Attention runs per image
 * and head as 2-D matMuls (q·kᵀ with kᵀ made explicit, then probs·v): on wasm a batched [B·H, N, D] matMul takes the
 * slow non-XNNPACK path (~5x slower). Rows are [B·N, C] throughout.
 */
function encoderLayer(cfg: ClipVisionConfig, w: LayerWeights, x: tf.Tensor3D, extras: true): { out: tf.Tensor3D } & LayerExtras;
function encoderLayer(cfg: ClipVisionConfig, w: LayerWeights, x: tf.Tensor3D, extras: false): { out: tf.Tensor3D };
function encoderLayer(cfg: ClipVisionConfig, w: LayerWeights, x: tf.Tensor3D, extras: boolean): { out: tf.Tensor3D } & Partial<LayerExtras> {
  const [B, N, C] = x.shape;
  const D = cfg.headDim;
  return tf.tidy(() => {
    const x2 = tf.reshape(x, [B * N, C]); // [B·N, C]
    // Self-attention, bidirectional; layer_norm1's affine and the 1/sqrt(D) query scale are folded into the head kernels.
    const h = normalize(x2, cfg.layerNormEps); // [B·N, C]
    const ctx: tf.Tensor2D[][] = Array.from({ length: B }, () => []); // [image][head] -> [N, D]
    const keys: tf.Tensor2D[][] = Array.from({ length: B }, () => []); // [image][head] -> [N, D]
    const cls: tf.Tensor2D[][] = Array.from({ length: B }, () => []); // [image][head] -> [1, N]
    for (const head of w.heads) {
      const qkv = tf.fused.matMul({ a: h, b: head.kernel, bias: head.bias }); // [B·N, 3D]: q·scale | k | v
      for (let b = 0; b < B; b++) {
        const rows = B === 1 ? qkv : tf.slice(qkv, [b * N, 0], [N, 3 * D]); // [N, 3D]
        const q = tf.slice(rows, [0, 0], [N, D]);
        const k = tf.slice(rows, [0, D], [N, D]) as tf.Tensor2D;
        const v = tf.slice(rows, [0, 2 * D], [N, D]);
        const kT = tf.transpose(k); // [D, N]
        const probs = tf.softmax(tf.matMul(q, kT)); // [N, N]
        ctx[b]!.push(tf.matMul(probs, v) as tf.Tensor2D); // [N, D]
        if (extras) {
          keys[b]!.push(k);
          cls[b]!.push(tf.softmax(tf.matMul(tf.slice(q, [0, 0], [1, D]), kT)) as tf.Tensor2D); // CLS query row [1, N] (a slice of probs would copy all of it on wasm)
        }
      }
    }
    const merged = tf.concat(ctx.map((heads) => tf.concat(heads, 1)), 0); // [B·N, C]
    const attn = tf.concat(w.out.map((o) => tf.fused.matMul({ a: merged, b: o.kernel, bias: o.bias })), 1); // [B·N, C]
    const afterAttn = tf.add(x2, attn); // [B·N, C]
    // MLP, blocked over the intermediate width; layer_norm2's affine is folded into fc1.
    const m = normalize(afterAttn, cfg.layerNormEps);
    const parts = w.mlp.map((blk) => tf.matMul(activation(tf.fused.matMul({ a: m, b: blk.fc1, bias: blk.fc1Bias }) as tf.Tensor2D, cfg.hiddenAct), blk.fc2)); // each [B·N, C]
    const mlp = tf.add(parts.length === 1 ? parts[0]! : tf.addN(parts), w.fc2Bias);
    const out = tf.reshape(tf.add(afterAttn, mlp), [B, N, C]) as tf.Tensor3D;
    if (!extras) return { out };
    const kh = tf.stack(keys.map((heads) => tf.stack(heads))) as tf.Tensor4D; // [B, H, N, D]
    return {
      out,
      clsAttention: tf.reshape(tf.stack(cls.map((heads) => tf.concat(heads, 0))), [B, cfg.heads, N]) as tf.Tensor3D, // [B, H, N]
      keys: kh, // [B, H, N, D]
      keysMean: tf.mean(kh, 1) as tf.Tensor3D, // [B, N, D]
    };
  });
}

/** HF hidden_states index -> 0..L, or a RangeError naming the valid range. */
export function resolveHiddenIndex(layer: number, numLayers: number): number {
  const idx = layer < 0 ? numLayers + 1 + layer : layer;
  if (!Number.isInteger(layer) || idx < 0 || idx > numLayers) {
    throw new RangeError(`clip vision: layer ${layer} is out of range: hidden_states has ${numLayers + 1} entries (valid: ${-(numLayers + 1)}..${numLayers})`);
  }
  return idx;
}

/** Builds a tower from already-loaded weights (our names, HF layout; the map's tensors are taken over). */
export function makeVisionTower(cfg: ClipVisionConfig, hf: Map<string, tf.Tensor>): VisionTower {
  let w: TowerWeights | undefined = layoutWeights(cfg, hf);
  const weights = (): TowerWeights => {
    if (!w) throw new Error("clip vision: used after dispose()");
    return w;
  };
  /** Runs layers [0, upTo) on x, disposing each intermediate as soon as the next exists. */
  const runLayers = (x: tf.Tensor3D, upTo: number): tf.Tensor3D => {
    for (let l = 0; l < upTo; l++) {
      const { out } = encoderLayer(cfg, weights().layers[l]!, x, false);
      x.dispose();
      x = out;
    }
    return x;
  };
  return {
    config: cfg,
    forward(pixelValues, opts = {}) {
      const idx = resolveHiddenIndex(opts.layer ?? -2, cfg.layers);
      if (idx === 0) {
        throw new RangeError(`clip vision: hidden_states[0] is the embedding output, which no encoder layer produced, so it has no attention or keys; use hiddenState(pixelValues, 0)`);
      }
      const before = runLayers(embed(cfg, weights(), pixelValues), idx - 1);
      const { out, ...extras } = encoderLayer(cfg, weights().layers[idx - 1]!, before, true);
      before.dispose();
      return { hidden: out, ...extras };
    },
    hiddenState(pixelValues, layer) {
      const idx = resolveHiddenIndex(layer, cfg.layers);
      return runLayers(embed(cfg, weights(), pixelValues), idx);
    },
    pooled(pixelValues) {
      const last = runLayers(embed(cfg, weights(), pixelValues), cfg.layers);
      const [B, , C] = last.shape;
      const out = tf.tidy(() => tf.reshape(layerNorm(tf.slice(last, [0, 0, 0], [B, 1, C]), weights().postNorm, cfg.layerNormEps), [B, C]) as tf.Tensor2D);
      last.dispose();
      return out;
    },
    dispose() {
      if (!w) return;
      const all: tf.Tensor[] = [];
      const collect = (o: unknown): void => {
        if (o instanceof tf.Tensor) all.push(o);
        else if (o && typeof o === "object") for (const v of Object.values(o)) collect(v);
      };
      collect(w);
      w = undefined;
      for (const t of all) t.dispose();
    },
  };
}

/**
 * Loads a CLIP vision tower from a model folder (clip_vision_model, clip or llava config.json). Tensors are checked
 * by name and shape before any data is read; `text_model.*`, `language_model.*`, projector tensors and the
 * `position_ids` buffer are skipped.
 */
export async function loadVisionTower(source: string): Promise<VisionTower> {
  const dir = await resolveModelDir(source);
  const cfg = await readClipVisionConfig(dir);
  const src = await openTensorSource(dir);
  // Newer transformers save composite LLaVA under `model.vision_tower.`; use whichever prefix the checkpoint has.
  const prefix = [cfg.prefix, `model.${cfg.prefix}`].find((p) => src.names.some((n) => n.startsWith(p)));
  if (!prefix) {
    throw new WeightsError(`${dir}: no tensors under "${cfg.prefix}" (model_type ${cfg.modelType}); this checkpoint has no CLIP vision tower`, dir);
  }
  const hf = await loadComponent(src, clipVisionComponent(cfg, prefix));
  return makeVisionTower({ ...cfg, prefix }, hf);
}
