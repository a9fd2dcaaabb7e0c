// The benchmarked model shapes with seeded random weights (no download): a CLIP ViT-L/14-336 layer stack, a
// Qwen2-0.5B-shaped decoder, LLaVA's mlp2x_gelu projector between them, and a training text batch. Built with the
// models' public constructors (makeVisionTower, createLanguageModel, buildProjector), so the code timed is the code
// that runs real checkpoints.
import { tf } from "../core/backend.js";
import { IMAGE_TOKEN_INDEX } from "../data/conversation.js";
import { IGNORE_INDEX } from "../train/loss.js";
import { clipVisionComponent, makeVisionTower, type ClipVisionConfig, type VisionTower } from "../models/clip_vision.js";
import { createLanguageModel, type LanguageModel } from "../models/llama.js";
import type { LlmWeights } from "../models/llama_weights.js";
import type { LlmConfig } from "../models/llm_config.js";
import { buildProjector, type Projector } from "../models/projector.js";
import type { Vlm, VlmTextBatch } from "../models/llava.js";
import type { ClipShape, DecoderShape } from "./flops.js";

/** openai/clip-vit-large-patch14-336 (LLaVA-1.5's tower) with `layers` encoder layers. */
export function clipLargeConfig(layers: number): ClipVisionConfig {
  return {
    modelType: "clip_vision_model",
    hidden: 1024,
    intermediate: 4096,
    layers,
    heads: 16,
    headDim: 64,
    imageSize: 336,
    patchSize: 14,
    numChannels: 3,
    numPositions: 577,
    layerNormEps: 1e-5,
    hiddenAct: "quick_gelu",
    prefix: "vision_model.",
  };
}

/** Real depth of the towers and decoders the bench stands in for. */
export const REAL_DEPTH = { clipLayers: 24, llavaTowerLayers: 23, qwen2Layers: 24, qwen2Vocab: 151936 } as const;

export function clipShapeOf(cfg: ClipVisionConfig): ClipShape {
  return { hidden: cfg.hidden, intermediate: cfg.intermediate, heads: cfg.heads, tokens: cfg.numPositions, patchSize: cfg.patchSize, channels: cfg.numChannels };
}

/**
 * The bench decoder's vocabulary: Qwen2's 151936 scaled by layers / 24, so the (tied) lm_head keeps the share of the
 * FLOPs it has in the 24-layer model (about a quarter of a forward). With the real vocabulary and 2 layers the
 * lm_head would be ~80% of a training step's work and the figures would measure one matMul, not a decoder.
 */
export function benchVocab(layers: number): number {
  return Math.max(1024, Math.round((REAL_DEPTH.qwen2Vocab * layers) / REAL_DEPTH.qwen2Layers));
}

/** Qwen/Qwen2-0.5B's config.json (hidden 896, 14 heads, 2 KV heads, MLP 4864, q/k/v bias, tied embeddings), `layers` deep. */
export function qwen2BenchConfig(layers: number, vocab = benchVocab(layers)): LlmConfig {
  return {
    family: "qwen2",
    modelType: "qwen2",
    hidden: 896,
    layers,
    heads: 14,
    kvHeads: 2,
    headDim: 64,
    intermediate: 4864,
    vocab,
    ropeTheta: 1_000_000,
    ropeScaling: null,
    eps: 1e-6,
    maxPositions: 32768,
    tieEmbeddings: true,
    qkvBias: true,
    oBias: false,
    mlpBias: false,
    bosTokenId: undefined,
    eosTokenIds: [],
    padTokenId: undefined,
    weightPrefix: "",
  };
}

export function decoderShapeOf(cfg: LlmConfig): DecoderShape {
  return { hidden: cfg.hidden, heads: cfg.heads, kvHeads: cfg.kvHeads, headDim: cfg.headDim, intermediate: cfg.intermediate, vocab: cfg.vocab };
}

const STD = 0.02; // HF initializer_range

/** A tower with N(0, 0.02) weights, unit norms and zero biases (HF layout, as a checkpoint would give them). */
export function randomVisionTower(cfg: ClipVisionConfig, seed = 1): VisionTower {
  const hf = new Map<string, tf.Tensor>();
  let s = seed;
  for (const [name, dims] of Object.entries(clipVisionComponent(cfg).shapes ?? {})) {
    const shape = [...dims];
    const norm = /norm\d?\.weight$/.test(name);
    const bias = name.endsWith(".bias");
    hf.set(name, norm ? tf.ones(shape) : bias ? tf.zeros(shape) : tf.randomNormal(shape, 0, STD, "float32", s++));
  }
  return makeVisionTower(cfg, hf);
}

/** A decoder with N(0, 0.02) weights in the loaded kernel layout (Linear weights [in, out], q/k/v and gate/up fused). */
export function randomLanguageModel(cfg: LlmConfig, seed = 1000): LanguageModel {
  const { hidden: C, heads: H, kvHeads: KV, headDim: D, intermediate: I, vocab: V } = cfg;
  let s = seed;
  const rnd = <T extends tf.Tensor>(shape: number[]) => tf.randomNormal(shape, 0, STD, "float32", s++) as T;
  const weights: LlmWeights = {
    embed: rnd([V, C]),
    norm: tf.ones([C]),
    layers: Array.from({ length: cfg.layers }, () => ({
      attnNorm: tf.ones([C]) as tf.Tensor1D,
      qkv: { w: rnd<tf.Tensor2D>([C, (H + 2 * KV) * D]), ...(cfg.qkvBias ? { b: tf.zeros([(H + 2 * KV) * D]) as tf.Tensor1D } : {}) },
      o: { w: rnd<tf.Tensor2D>([H * D, C]) },
      mlpNorm: tf.ones([C]) as tf.Tensor1D,
      gateUp: { w: rnd<tf.Tensor2D>([C, 2 * I]) },
      down: { w: rnd<tf.Tensor2D>([I, C]) },
    })),
    ...(cfg.tieEmbeddings ? {} : { lmHead: { w: rnd<tf.Tensor2D>([C, V]) } }),
  };
  return createLanguageModel(cfg, weights);
}

/** A VLM of already-built parts (for the training step, which uses projector and LLM only). */
export function benchVlm(tower: VisionTower, projector: Projector, lm: LanguageModel): Vlm {
  return {
    tower,
    projector,
    lm,
    tokenizer: undefined,
    preprocessor: {},
    preprocessMode: "clip",
    visionLayer: -2,
    imageTokenId: IMAGE_TOKEN_INDEX,
    gridSize: tower.config.imageSize / tower.config.patchSize,
    dispose() {
      tower.dispose();
      projector.dispose();
      lm.dispose();
    },
  };
}

export function benchProjector(inDim: number, outDim: number): Projector {
  return buildProjector({ type: "mlp2x_gelu", inDim, outDim, seed: 0 });
}

/**
 * `rows` training rows of `textTokens` text ids around one image placeholder, LLaVA-style: a short system/user prefix,
 * the image, the question, then the answer (the last `answerTokens` ids, supervised). Ids are drawn in 1..vocab-1.
 */
export function trainTextBatch(rows: number, textTokens: number, vocab: number, answerTokens = 10): VlmTextBatch {
  const prefix = 5;
  const inputIds: number[][] = [];
  const labels: number[][] = [];
  for (let r = 0; r < rows; r++) {
    const ids = Array.from({ length: textTokens }, (_, i) => 1 + ((r * 7919 + i * 104729) % (vocab - 1)));
    const row = [...ids.slice(0, prefix), IMAGE_TOKEN_INDEX, ...ids.slice(prefix)];
    inputIds.push(row);
    labels.push(row.map((id, i) => (i >= row.length - answerTokens ? id : IGNORE_INDEX)));
  }
  return { inputIds, labels };
}

/** Pixel values [B, 3, S, S] of a N(0, 1) "image" (normalised pixels have about unit variance). */
export function randomPixels(cfg: ClipVisionConfig, batch = 1, seed = 7): tf.Tensor4D {
  return tf.randomNormal([batch, cfg.numChannels, cfg.imageSize, cfg.imageSize], 0, 1, "float32", seed);
}
