// `vzt make-tiny`: writes small deterministic models in Hugging Face format, loaded by the same code as real ones.
//   clip/       CLIPVisionModel (336 px, patch 14 -> 577 tokens like LLaVA-1.5's ViT-L/14-336, but 64 wide)
//   llm/        LlamaForCausalLM + a word-level tokenizer covering the shapes dataset and the vicuna_v1 template
//   projector/  the untrained LLaVA mlp2x_gelu projector (model.mm_projector.0/2.*)
//   llava/      the three together as an HF LLaVA composite (like llava-hf/llava-1.5-7b-hf)
// Weights are seeded normal draws (core/rng.ts, one stream per tensor name) at scales that keep an untrained
// forward finite and non-degenerate; the same seed writes byte-identical files.
import { CLIP_VIT_L_336_PREPROCESSOR } from "../data/preprocess.js";
import { mkdir, rm, writeFile } from "node:fs/promises";
import path from "node:path";
import { ensureBackend, tf } from "../core/backend.js";
import { createRng } from "../core/rng.js";
import { SHAPES_VOCAB } from "../data/shapes.js";
import type { Json } from "./config_json.js";
import { buildProjector, projectorConfigJson, projectorTensors, type Projector } from "./projector.js";
import { pretrainTiny, type PretrainOptions, type PretrainResult } from "./pretrain_tiny.js";
import { writeSafetensors } from "./safetensors.js";

export interface TinyOptions {
  /** Seed of every weight draw (default 0). */
  seed?: number;
  /**
   * Then pretrain the LLM and projector on shapes data (models/pretrain_tiny.ts; seed defaults to `seed`): llm/ and
   * llava/ hold the trained LLM, projector/ the trained projector, projector_init/ the untrained one.
   */
  pretrain?: Omit<PretrainOptions, "seed" | "dryRun"> & { seed?: number };
  /**
   * Decoder layers of the tiny LLM (default TINY_LLM.layers = 2). Every layer draws from its own (seed, name) stream,
   * so layers 0-1 of a deeper model equal the default model's. In-LLM reduction needs depth: P-Sigmoid / G-Search
   * never reduce layers 0-1, FastV and TopV act at layer 2 (`vzt make-tiny --llm-layers 4`).
   */
  llmLayers?: number;
}

/** Sizes of the tiny CLIP vision tower. */
export const TINY_CLIP = { hidden: 64, intermediate: 256, layers: 3, heads: 4, imageSize: 336, patchSize: 14 } as const;
/** Sizes of the tiny LLaMA. */
export const TINY_LLM = { hidden: 128, intermediate: 344, layers: 2, heads: 4, kvHeads: 2, maxPositions: 512 } as const;

// ---- tokenizer ----------------------------------------------------------------------------------------------------

export const SPECIAL_TOKENS = { unk: "<unk>", bos: "<s>", eos: "</s>", image: "<image>", pad: "<pad>" } as const;
/** Punctuation tokens (single characters; the Whitespace pre-tokenizer keeps runs like "?!" as one unknown token). */
export const PUNCTUATION = [".", ",", "?", "!", ":", ";", "'", '"', "-", "(", ")", "/"] as const;

export interface TinyTokenizerFiles {
  /** tokenizer.json */
  tokenizer: Json;
  /** tokenizer_config.json */
  tokenizerConfig: Json;
  /** special_tokens_map.json */
  specialTokensMap: Json;
  vocabSize: number;
  ids: { unk: number; bos: number; eos: number; image: number; pad: number };
}

/**
 * A word-level tokenizer (HF `WordLevel` model, `Whitespace` pre-tokenizer = `\w+|[^\w\s]+`, no normalizer, no
 * decoder, BOS added by a TemplateProcessing post-processor like LLaMA's). Ids: <unk> 0, <s> 1, </s> 2, then
 * punctuation, digits 0-9 and SHAPES_VOCAB, then <image> and <pad> last (as llava-hf appends them to LLaMA's vocab).
 * Decoding joins tokens with single spaces (then clean_up_tokenization_spaces glues ". ? ! , 's"), so "USER:" decodes
 * as "USER :" and newlines become spaces: text round-trips up to whitespace.
 */
export function buildTinyTokenizer(): TinyTokenizerFiles {
  const words: string[] = [SPECIAL_TOKENS.unk, SPECIAL_TOKENS.bos, SPECIAL_TOKENS.eos, ...PUNCTUATION];
  for (let d = 0; d <= 9; d++) words.push(String(d));
  for (const w of SHAPES_VOCAB) if (!words.includes(w)) words.push(w);
  words.push(SPECIAL_TOKENS.image, SPECIAL_TOKENS.pad);
  const vocab: Record<string, number> = {};
  words.forEach((w, i) => (vocab[w] = i));
  const id = (t: string): number => vocab[t]!;
  const ids = { unk: id("<unk>"), bos: id("<s>"), eos: id("</s>"), image: id("<image>"), pad: id("<pad>") };
  const added = (["<unk>", "<s>", "</s>", "<image>", "<pad>"] as const).map((content) => ({
    id: id(content),
    content,
    single_word: false,
    lstrip: false,
    rstrip: false,
    normalized: false,
    special: true,
  }));
  const bos = { SpecialToken: { id: "<s>", type_id: 0 } };
  const tokenizer: Json = {
    version: "1.0",
    truncation: null,
    padding: null,
    added_tokens: added,
    normalizer: null,
    pre_tokenizer: { type: "Whitespace" },
    post_processor: {
      type: "TemplateProcessing",
      single: [bos, { Sequence: { id: "A", type_id: 0 } }],
      pair: [bos, { Sequence: { id: "A", type_id: 0 } }, { SpecialToken: { id: "<s>", type_id: 1 } }, { Sequence: { id: "B", type_id: 1 } }],
      special_tokens: { "<s>": { id: "<s>", ids: [ids.bos], tokens: ["<s>"] } },
    },
    decoder: null,
    model: { type: "WordLevel", vocab, unk_token: "<unk>" },
  };
  const addedTokensDecoder: Record<string, Json> = {};
  for (const a of added) {
    const { id: i, ...rest } = a;
    addedTokensDecoder[String(i)] = rest;
  }
  const tokenizerConfig: Json = {
    add_bos_token: true,
    add_eos_token: false,
    added_tokens_decoder: addedTokensDecoder,
    bos_token: "<s>",
    eos_token: "</s>",
    unk_token: "<unk>",
    pad_token: "<pad>",
    clean_up_tokenization_spaces: true,
    model_max_length: TINY_LLM.maxPositions,
    padding_side: "left",
    tokenizer_class: "PreTrainedTokenizerFast",
  };
  const specialTokensMap: Json = { bos_token: "<s>", eos_token: "</s>", unk_token: "<unk>", pad_token: "<pad>" };
  return { tokenizer, tokenizerConfig, specialTokensMap, vocabSize: words.length, ids };
}

// ---- configs ------------------------------------------------------------------------------------------------------

/** HF CLIPVisionConfig of the tiny vision tower. */
export function tinyClipConfig(): Json {
  const c = TINY_CLIP;
  return {
    architectures: ["CLIPVisionModel"],
    attention_dropout: 0.0,
    dropout: 0.0,
    hidden_act: "quick_gelu",
    hidden_size: c.hidden,
    image_size: c.imageSize,
    initializer_factor: 1.0,
    initializer_range: 0.02,
    intermediate_size: c.intermediate,
    layer_norm_eps: 1e-5,
    model_type: "clip_vision_model",
    num_attention_heads: c.heads,
    num_channels: 3,
    num_hidden_layers: c.layers,
    patch_size: c.patchSize,
    projection_dim: c.hidden,
    torch_dtype: "float32",
  };
}

/** HF LlamaConfig of the tiny LLM (`layers` decoder layers, default TINY_LLM.layers). */
export function tinyLlamaConfig(tok: TinyTokenizerFiles, layers: number = TINY_LLM.layers): Json {
  const c = { ...TINY_LLM, layers };
  return {
    architectures: ["LlamaForCausalLM"],
    attention_bias: false,
    attention_dropout: 0.0,
    bos_token_id: tok.ids.bos,
    eos_token_id: tok.ids.eos,
    pad_token_id: tok.ids.pad,
    head_dim: c.hidden / c.heads,
    hidden_act: "silu",
    hidden_size: c.hidden,
    initializer_range: 0.02,
    intermediate_size: c.intermediate,
    max_position_embeddings: c.maxPositions,
    mlp_bias: false,
    model_type: "llama",
    num_attention_heads: c.heads,
    num_hidden_layers: c.layers,
    num_key_value_heads: c.kvHeads,
    pretraining_tp: 1,
    rms_norm_eps: 1e-6,
    rope_scaling: null,
    rope_theta: 10000.0,
    tie_word_embeddings: false,
    torch_dtype: "float32",
    use_cache: true,
    vocab_size: tok.vocabSize,
  };
}

/** openai/clip-vit-large-patch14-336's preprocessor_config.json (what LLaVA-1.5 uses), at the tiny tower's size. */
export function clipPreprocessorConfig(): Json {
  return { ...CLIP_VIT_L_336_PREPROCESSOR, crop_size: TINY_CLIP.imageSize, size: TINY_CLIP.imageSize };
}

// ---- weights ------------------------------------------------------------------------------------------------------

export interface Draw {
  shape: number[];
  /** Values are mean + std * N(0, 1). */
  mean: number;
  std: number;
}

/** FNV-1a of a string: the per-tensor stream seed. */
function hash32(text: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) h = Math.imul(h ^ text.charCodeAt(i), 0x01000193) >>> 0;
  return h;
}

/** Draws every tensor from its own stream (seed, name), so values do not depend on the order of the list. */
function drawTensors(seed: number, specs: Record<string, Draw>): Record<string, Float32Array> {
  const out: Record<string, Float32Array> = {};
  for (const [name, d] of Object.entries(specs)) {
    const rng = createRng(hash32(`${seed}:${name}`));
    const n = d.shape.reduce((a, b) => a * b, 1);
    const v = new Float32Array(n);
    for (let i = 0; i < n; i++) v[i] = d.mean + d.std * rng.normal();
    out[name] = v;
  }
  return out;
}

const W = (shape: number[], std: number): Draw => ({ shape, mean: 0, std });
const NORM = (n: number): Draw => ({ shape: [n], mean: 1, std: 0.1 });

/** HF CLIPVisionModel tensor names -> shape and init. q/k 0.2 so CLS attention is peaked (VisionZip needs that). */
export function tinyClipDraws(): Record<string, Draw> {
  const { hidden: C, intermediate: F, layers: L, patchSize: P, imageSize } = TINY_CLIP;
  const N = (imageSize / P) ** 2 + 1; // 577
  const d: Record<string, Draw> = {
    "vision_model.embeddings.patch_embedding.weight": W([C, 3, P, P], 0.04),
    "vision_model.embeddings.class_embedding": W([C], 0.5),
    "vision_model.embeddings.position_embedding.weight": W([N, C], 0.2),
    "vision_model.pre_layrnorm.weight": NORM(C),
    "vision_model.pre_layrnorm.bias": W([C], 0.05),
    "vision_model.post_layernorm.weight": NORM(C),
    "vision_model.post_layernorm.bias": W([C], 0.05),
  };
  for (let l = 0; l < L; l++) {
    const p = `vision_model.encoder.layers.${l}.`;
    for (const [proj, std] of [["q", 0.2], ["k", 0.2], ["v", 0.1], ["out", 0.1]] as const) {
      d[`${p}self_attn.${proj}_proj.weight`] = W([C, C], std);
      d[`${p}self_attn.${proj}_proj.bias`] = W([C], 0.02);
    }
    d[`${p}layer_norm1.weight`] = NORM(C);
    d[`${p}layer_norm1.bias`] = W([C], 0.05);
    d[`${p}layer_norm2.weight`] = NORM(C);
    d[`${p}layer_norm2.bias`] = W([C], 0.05);
    d[`${p}mlp.fc1.weight`] = W([F, C], 0.1);
    d[`${p}mlp.fc1.bias`] = W([F], 0.02);
    d[`${p}mlp.fc2.weight`] = W([C, F], 0.05);
    d[`${p}mlp.fc2.bias`] = W([C], 0.02);
  }
  return d;
}

/**
 * HF LlamaForCausalLM tensor names -> shape and init (q/k rows in the HF layout; random draws need no permutation),
 * for `layers` decoder layers (default TINY_LLM.layers).
 */
export function tinyLlamaDraws(vocabSize: number, layers: number = TINY_LLM.layers): Record<string, Draw> {
  const { hidden: H, intermediate: F, heads, kvHeads } = TINY_LLM;
  const L = layers;
  const kv = (H / heads) * kvHeads;
  const d: Record<string, Draw> = {
    "model.embed_tokens.weight": W([vocabSize, H], 1.0),
    "model.norm.weight": NORM(H),
    "lm_head.weight": W([vocabSize, H], 0.15),
  };
  for (let l = 0; l < L; l++) {
    const p = `model.layers.${l}.`;
    d[`${p}self_attn.q_proj.weight`] = W([H, H], 0.1);
    d[`${p}self_attn.k_proj.weight`] = W([kv, H], 0.1);
    d[`${p}self_attn.v_proj.weight`] = W([kv, H], 0.08);
    d[`${p}self_attn.o_proj.weight`] = W([H, H], 0.08);
    d[`${p}mlp.gate_proj.weight`] = W([F, H], 0.08);
    d[`${p}mlp.up_proj.weight`] = W([F, H], 0.08);
    d[`${p}mlp.down_proj.weight`] = W([H, F], 0.05);
    d[`${p}input_layernorm.weight`] = NORM(H);
    d[`${p}post_attention_layernorm.weight`] = NORM(H);
  }
  return d;
}

// ---- writing ------------------------------------------------------------------------------------------------------

async function writeJson(dir: string, name: string, value: Json): Promise<void> {
  await writeFile(path.join(dir, name), JSON.stringify(value, null, 2) + "\n");
}

/** Writes arrays as F32 safetensors under `prefix + name` (tensors are created here and disposed after writing). */
async function writeArrays(
  file: string,
  parts: { prefix: string; values: Record<string, Float32Array>; draws: Record<string, Draw> }[],
  extra: Record<string, tf.Tensor> = {},
): Promise<void> {
  const tensors: Record<string, tf.Tensor> = { ...extra };
  try {
    for (const { prefix, values, draws } of parts) {
      for (const [name, v] of Object.entries(values)) tensors[prefix + name] = tf.tensor(v, draws[name]!.shape, "float32");
    }
    await writeSafetensors(file, tensors);
  } finally {
    for (const [name, t] of Object.entries(tensors)) if (!(name in extra)) t.dispose();
  }
}

async function writeTokenizer(dir: string, tok: TinyTokenizerFiles): Promise<void> {
  await writeJson(dir, "tokenizer.json", tok.tokenizer);
  await writeJson(dir, "tokenizer_config.json", tok.tokenizerConfig);
  await writeJson(dir, "special_tokens_map.json", tok.specialTokensMap);
  await writeJson(dir, "generation_config.json", { bos_token_id: tok.ids.bos, eos_token_id: tok.ids.eos, pad_token_id: tok.ids.pad });
}

/**
 * Writes `clip/`, `llm/`, `projector/` and `llava/` under outDir (created if missing; existing files overwritten;
 * a previous pretraining's `pretrain.json` and `projector_init/` removed), then pretrains when `opts.pretrain` is
 * given (its metrics are returned). The same seed gives byte-identical files. Leaves the tensor count unchanged.
 */
export async function makeTiny(outDir: string, opts: TinyOptions = {}): Promise<PretrainResult | undefined> {
  await writeTiny(outDir, opts);
  if (!opts.pretrain) return undefined;
  return pretrainTiny(outDir, { ...opts.pretrain, seed: opts.pretrain.seed ?? opts.seed ?? 0 });
}

async function writeTiny(outDir: string, opts: TinyOptions): Promise<void> {
  await ensureBackend();
  const seed = opts.seed ?? 0;
  if (!Number.isSafeInteger(seed) || seed < 0) throw new RangeError(`make-tiny: seed must be a non-negative integer, got ${seed}`);
  const llmLayers = opts.llmLayers ?? TINY_LLM.layers;
  if (!Number.isSafeInteger(llmLayers) || llmLayers < 1 || llmLayers > 64) throw new RangeError(`make-tiny: llmLayers must be an integer in [1, 64], got ${llmLayers}`);
  await tf.ready();
  const tok = buildTinyTokenizer();
  const clipConfig = tinyClipConfig();
  const llmConfig = tinyLlamaConfig(tok, llmLayers);
  const clipDraws = tinyClipDraws();
  const llmDraws = tinyLlamaDraws(tok.vocabSize, llmLayers);
  const clip = drawTensors(seed, clipDraws);
  const llm = drawTensors(seed + 1, llmDraws);
  const dirs = Object.fromEntries(["clip", "llm", "projector", "llava"].map((d) => [d, path.join(outDir, d)])) as Record<string, string>;
  for (const d of Object.values(dirs)) await mkdir(d, { recursive: true });
  await rm(path.join(outDir, "pretrain.json"), { force: true });
  await rm(path.join(outDir, "projector_init"), { recursive: true, force: true });

  // clip/
  await writeJson(dirs.clip!, "config.json", clipConfig);
  await writeJson(dirs.clip!, "preprocessor_config.json", clipPreprocessorConfig());
  await writeArrays(path.join(dirs.clip!, "model.safetensors"), [{ prefix: "", values: clip, draws: clipDraws }]);

  // llm/
  await writeJson(dirs.llm!, "config.json", llmConfig);
  await writeTokenizer(dirs.llm!, tok);
  await writeArrays(path.join(dirs.llm!, "model.safetensors"), [{ prefix: "", values: llm, draws: llmDraws }]);

  // projector/ (LLaVA names) and llava/ (HF names): the same untrained projector.
  const projector: Projector = buildProjector({ type: "mlp2x_gelu", inDim: TINY_CLIP.hidden, outDim: TINY_LLM.hidden, seed: seed + 2 });
  try {
    await writeJson(dirs.projector!, "config.json", {
      ...projectorConfigJson(projector),
      mm_vision_select_layer: -2,
      mm_vision_select_feature: "patch",
    });
    const llavaNames = projectorTensors(projector, "llava");
    try {
      await writeSafetensors(path.join(dirs.projector!, "model.safetensors"), llavaNames);
    } finally {
      for (const t of Object.values(llavaNames)) t.dispose();
    }

    // llava/
    await writeJson(dirs.llava!, "config.json", {
      architectures: ["LlavaForConditionalGeneration"],
      ignore_index: -100,
      image_seq_length: (TINY_CLIP.imageSize / TINY_CLIP.patchSize) ** 2,
      image_token_index: tok.ids.image,
      model_type: "llava",
      multimodal_projector_bias: true,
      pad_token_id: tok.ids.pad,
      projector_hidden_act: "gelu",
      text_config: llmConfig,
      tie_word_embeddings: false,
      torch_dtype: "float32",
      vision_config: clipConfig,
      vision_feature_layer: -2,
      vision_feature_select_strategy: "default",
      vocab_size: tok.vocabSize,
    });
    await writeJson(dirs.llava!, "preprocessor_config.json", clipPreprocessorConfig());
    await writeTokenizer(dirs.llava!, tok);
    const hfNames = projectorTensors(projector, "hf");
    try {
      await writeArrays(
        path.join(dirs.llava!, "model.safetensors"),
        [
          { prefix: "vision_tower.", values: clip, draws: clipDraws },
          { prefix: "language_model.", values: llm, draws: llmDraws },
        ],
        hfNames,
      );
    } finally {
      for (const t of Object.values(hfNames)) t.dispose();
    }
  } finally {
    projector.dispose();
  }
}
