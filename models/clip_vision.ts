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

/** One encoder layer's weights in kernel layout: Linear kernels [in, out], q/k/v fused, query scale folded into q. */
interface LayerWeights {
  norm1: { w: tf.Tensor1D; b: tf.Tensor1D };
  qkvKernel: tf.Tensor2D; // [C, 3C]: columns q*scale | k | v
  qkvBias: tf.Tensor1D; // [3C]
  outKernel: tf.Tensor2D; // [C, C]
  outBias: tf.Tensor1D;
  norm2: { w: tf.Tensor1D; b: tf.Tensor1D };
  fc1Kernel: tf.Tensor2D; // [C, I]
  fc1Bias: tf.Tensor1D;
  fc2Kernel: tf.Tensor2D; // [I, C]
  fc2Bias: tf.Tensor1D;
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
  const C = cfg.hidden;
  const scale = 1 / Math.sqrt(cfg.headDim);
  const layers: LayerWeights[] = [];
  for (let l = 0; l < cfg.layers; l++) {
    const t = <T extends tf.Tensor>(n: string) => take<T>(`layers.${l}.${n}`);
    const at = (...ns: string[]) => ns.map((n) => `layers.${l}.${n}`);
    layers.push({
      norm1: { w: t("norm1.weight"), b: t("norm1.bias") },
      qkvKernel: swap(at("attn.q.weight", "attn.k.weight", "attn.v.weight"), (q, k, v) => tf.transpose(tf.concat([tf.mul(q!, scale), k!, v!], 0))),
      qkvBias: swap(at("attn.q.bias", "attn.k.bias", "attn.v.bias"), (q, k, v) => tf.concat([tf.mul(q!, scale), k!, v!])),
      outKernel: swap(at("attn.out.weight"), (w) => tf.transpose(w!)),
      outBias: t("attn.out.bias"),
      norm2: { w: t("norm2.weight"), b: t("norm2.bias") },
      fc1Kernel: swap(at("mlp.fc1.weight"), (w) => tf.transpose(w!)),
      fc1Bias: t("mlp.fc1.bias"),
      fc2Kernel: swap(at("mlp.fc2.weight"), (w) => tf.transpose(w!)),
      fc2Bias: t("mlp.fc2.bias"),
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

/** LayerNorm over the last axis: (x - mean) / sqrt(var + eps) * w + b (biased variance, like PyTorch). */
function layerNorm(x: tf.Tensor3D, n: { w: tf.Tensor1D; b: tf.Tensor1D }, eps: number): tf.Tensor3D {
  return tf.tidy(() => {
    const { mean, variance } = tf.moments(x, -1, true);
    return tf.add(tf.mul(tf.mul(tf.sub(x, mean), tf.rsqrt(tf.add(variance, eps))), n.w), n.b);
  });
}

/** x @ kernel + bias for x [B, N, in]. */
function linear(x: tf.Tensor3D, kernel: tf.Tensor2D, bias: tf.Tensor1D): tf.Tensor3D {
  const [B, N, In] = x.shape;
  return tf.tidy(() => tf.reshape(tf.fused.matMul({ a: tf.reshape(x, [B * N, In]), b: kernel, bias }), [B, N, kernel.shape[1]]));
}

function activation(x: tf.Tensor3D, act: ClipHiddenAct): tf.Tensor3D {
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

/** One pre-LN encoder layer; with `extras`, also the CLS attention row and the per-head keys. */
function encoderLayer(cfg: ClipVisionConfig, w: LayerWeights, x: tf.Tensor3D, extras: true): { out: tf.Tensor3D } & LayerExtras;
function encoderLayer(cfg: ClipVisionConfig, w: LayerWeights, x: tf.Tensor3D, extras: false): { out: tf.Tensor3D };
function encoderLayer(cfg: ClipVisionConfig, w: LayerWeights, x: tf.Tensor3D, extras: boolean): { out: tf.Tensor3D } & Partial<LayerExtras> {
  const [B, N, C] = x.shape;
  const { heads: Hh, headDim: D } = cfg;
  return tf.tidy(() => {
    // Self-attention, bidirectional; the query is pre-scaled by 1/sqrt(D) in qkvKernel/qkvBias.
    const h = layerNorm(x, w.norm1, cfg.layerNormEps); // [B, N, C]
    const qkv = linear(h, w.qkvKernel, w.qkvBias); // [B, N, 3C]
    const [q, k, v] = tf.split(qkv, 3, 2) as [tf.Tensor3D, tf.Tensor3D, tf.Tensor3D]; // each [B, N, C]
    const heads = (t: tf.Tensor3D) => tf.transpose(tf.reshape(t, [B, N, Hh, D]), [0, 2, 1, 3]) as tf.Tensor4D; // [B, H, N, D]
    const kh = heads(k);
    const probs = tf.softmax(tf.matMul(heads(q), kh, false, true)); // [B, H, N, N]
    const ctx = tf.reshape(tf.transpose(tf.matMul(probs, heads(v)), [0, 2, 1, 3]), [B, N, C]) as tf.Tensor3D; // [B, N, C]
    const afterAttn = tf.add(x, linear(ctx, w.outKernel, w.outBias)) as tf.Tensor3D; // [B, N, C]
    // MLP
    const m = layerNorm(afterAttn, w.norm2, cfg.layerNormEps);
    const mlp = linear(activation(linear(m, w.fc1Kernel, w.fc1Bias), cfg.hiddenAct), w.fc2Kernel, w.fc2Bias); // [B, N, C]
    const out = tf.add(afterAttn, mlp) as tf.Tensor3D;
    if (!extras) return { out };
    return {
      out,
      clsAttention: tf.reshape(tf.slice(probs, [0, 0, 0, 0], [B, Hh, 1, N]), [B, Hh, N]) as tf.Tensor3D, // [B, H, N]
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
