// The LLaVA vision-language model, assembled from its parts and run as LLaVA does, top to bottom:
//   pixel_values -> CLIP vision tower (hidden state `visionLayer`, default -2, with CLS attention and keys)
//   -> token reducer (passed in as a value: visionzip, none, ...) -> projector -> splice into the text embeddings
//   at each IMAGE_TOKEN_INDEX (-200) -> LLaMA-family LLM -> logits.
// Parts come from a composite folder (HF llava-hf, or original LLaVA whose tower is named by mm_vision_tower) and/or
// separate sources that override the composite's parts. Every function leaves tf.memory().numTensors unchanged
// apart from the tensors it returns.
import { stat } from "node:fs/promises";
import { existsSync } from "node:fs";
import path from "node:path";
import { tf } from "../core/backend.js";
import { ConfigError } from "../core/errors.js";
import { IMAGE_TOKEN_INDEX } from "../data/conversation.js";
import { CLIP_VIT_L_336_PREPROCESSOR, loadPreprocessorConfig, type PreprocessMode } from "../data/preprocess.js";
import { loadTokenizer, type Tokenizer } from "../data/tokenizer.js";
import type { Reducer, ReduceResult } from "../reduce/reducer.js";
import type { InLlmReducer, ReductionTrace } from "../reduce/in_llm.js";
import { loadVisionTower, type VisionOutput, type VisionTower } from "./clip_vision.js";
import { readConfigJson, type Json } from "./config_json.js";
import { decodeStep, type GenerateOptions } from "./generate.js";
import { resolveModelDir } from "./hub.js";
import { loadLanguageModel, type ForwardOutput, type LanguageModel } from "./llama.js";
import { buildProjector, loadProjector, type Projector, type ProjectorType } from "./projector.js";
import { spliceImageTokens, type ImageSpan, type PadSide } from "./splice.js";

// ---- sources and settings ------------------------------------------------------------------------------------

export interface VlmSources {
  /** Composite LLaVA folder or Hub repo (model_type llava): holds the LLM, projector and (llava-hf) the tower. */
  model?: string;
  /** CLIP vision tower folder / repo (overrides the composite's). */
  visionTower?: string;
  /** LLM folder / repo (overrides the composite's). */
  languageModel?: string;
  /** Projector .safetensors file or folder (overrides the composite's). */
  projector?: string;
  /** Tokenizer folder / repo (default: the composite's, else the LLM's; absent when that folder has none). */
  tokenizer?: string;
  /** Build a fresh projector (tower width -> LLM width) instead of a composite's; ignored when `projector` is given. */
  projectorInit?: { seed: number; type?: ProjectorType };
}

/** What the configs say, before any weights are read. */
export interface VlmSettings {
  towerSource: string;
  languageModelSource?: string;
  projectorSource?: string;
  tokenizerSource?: string;
  /** The preprocessor_config.json object found (composite, then tower folder), or undefined. */
  preprocessor?: Json;
  /** `image_aspect_ratio: pad` (original LLaVA) -> "pad"; else "clip". */
  preprocessMode: PreprocessMode;
  /** vision_feature_layer / mm_vision_select_layer, default -2. */
  visionLayer: number;
  /** image_token_index of the config, when it gives one. */
  imageTokenIndex?: number;
}

async function isDir(p: string): Promise<boolean> {
  return (await stat(p).catch(() => undefined))?.isDirectory() ?? false;
}

/** config.json of a local folder, or undefined (a file, a repo id, or a folder without one). */
async function localConfig(source: string | undefined): Promise<Json | undefined> {
  if (!source || !(await isDir(source)) || !existsSync(path.join(source, "config.json"))) return undefined;
  return readConfigJson(source);
}

function intKey(json: Json | undefined, key: string, file: string): number | undefined {
  const v = json?.[key];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== "number" || !Number.isInteger(v)) throw new ConfigError([`${key}: expected an integer, got ${JSON.stringify(v)}`], file);
  return v;
}

/** Resolves which source holds each part and reads the LLaVA settings (no weights read). */
export async function resolveVlmSettings(src: VlmSources): Promise<VlmSettings> {
  let dir: string | undefined;
  let json: Json | undefined;
  if (src.model) {
    dir = await resolveModelDir(src.model);
    json = await readConfigJson(dir);
    if (json.model_type !== "llava") {
      throw new ConfigError([`model_type: ${JSON.stringify(json.model_type)} is not a LLaVA composite (expected "llava"); pass the parts as visionTower / languageModel / projector`], path.join(dir, "config.json"));
    }
  }
  const file = dir ? path.join(dir, "config.json") : "config.json";
  // Original LLaVA names its tower by repo id; llava-hf nests vision_config and holds the tower's tensors.
  const compositeTower = json ? (json.vision_config ? dir : typeof json.mm_vision_tower === "string" ? json.mm_vision_tower : undefined) : undefined;
  const towerSource = src.visionTower ?? compositeTower;
  if (!towerSource) {
    throw new ConfigError([src.model ? "vision_config / mm_vision_tower: the composite names no vision tower; pass visionTower" : "visionTower: required without a composite model"], file);
  }
  const languageModelSource = src.languageModel ?? dir;
  const projectorSource = src.projector ?? dir;
  const projectorJson = json ?? (await localConfig(src.projector));
  const projectorFile = dir ? file : path.join(src.projector ?? ".", "config.json");
  const layer = intKey(json, "vision_feature_layer", file) ?? intKey(projectorJson, "mm_vision_select_layer", projectorFile) ?? -2;
  const aspect = (json ?? projectorJson)?.image_aspect_ratio;

  let preprocessor: Json | undefined;
  for (const d of [dir, towerSource === dir ? undefined : await resolveModelDir(towerSource)]) {
    if (d && (existsSync(path.join(d, "preprocessor_config.json")) || existsSync(path.join(d, "processor_config.json")))) {
      preprocessor = await loadPreprocessorConfig(d);
      break;
    }
  }
  const lmDir = languageModelSource === undefined || languageModelSource === dir ? undefined : await resolveModelDir(languageModelSource);
  const tokenizerSource = src.tokenizer ?? [dir, lmDir].find((d) => d !== undefined && hasTokenizerFiles(d));
  return {
    towerSource,
    languageModelSource,
    projectorSource,
    tokenizerSource,
    preprocessor,
    preprocessMode: aspect === "pad" ? "pad" : "clip",
    visionLayer: layer,
    imageTokenIndex: intKey(json, "image_token_index", file),
  };
}

function hasTokenizerFiles(dir: string): boolean {
  const has = (n: string) => existsSync(path.join(dir, n));
  return has("tokenizer.json") || (has("vocab.json") && has("merges.txt"));
}

/** The preprocessor config to use: the one found, else CLIP ViT-L/14-336's at the tower's image size. */
export function preprocessorFor(found: Json | undefined, imageSize: number): Json {
  return found ?? { ...CLIP_VIT_L_336_PREPROCESSOR, size: imageSize, crop_size: imageSize };
}

// ---- the model -------------------------------------------------------------------------------------------------

export interface Vlm {
  tower: VisionTower;
  projector: Projector;
  lm: LanguageModel;
  /** undefined when no tokenizer source was given or found (e.g. a bare LLM folder). */
  tokenizer: Tokenizer | undefined;
  /** preprocessor_config.json object for preprocessImage / preprocessToFloat32 (`config`). */
  preprocessor: Json;
  preprocessMode: PreprocessMode;
  /** HF hidden_states index the features come from (vision_feature_layer / mm_vision_select_layer; default -2). */
  visionLayer: number;
  /** config image_token_index, else the tokenizer's `<image>` id, else IMAGE_TOKEN_INDEX (-200). */
  imageTokenId: number;
  /** Patches per side of the tower (24 for ViT-L/14-336). */
  gridSize: number;
  dispose(): void;
}

/**
 * Loads the tower, projector, LLM and tokenizer. Separate sources override the composite's parts; without any
 * projector source, `projectorInit` builds a fresh one (PyTorch-default init, seeded). Widths are checked:
 * projector in = tower hidden, projector out = LLM hidden.
 */
export async function loadVlm(src: VlmSources): Promise<Vlm> {
  const s = await resolveVlmSettings(src);
  if (!s.languageModelSource) throw new ConfigError(["languageModel: required without a composite model"]);
  const owned: { dispose(): void }[] = [];
  try {
    const tower = await loadVisionTower(s.towerSource);
    owned.push(tower);
    const lm = await loadLanguageModel(s.languageModelSource);
    owned.push(lm);
    let projector: Projector;
    // An explicit projector wins; then an explicit fresh init (it replaces a composite's projector); then the composite's.
    if (s.projectorSource && (src.projector || !src.projectorInit)) projector = await loadProjector(s.projectorSource);
    else if (src.projectorInit) {
      projector = buildProjector({ type: src.projectorInit.type ?? "mlp2x_gelu", inDim: tower.config.hidden, outDim: lm.config.hidden, seed: src.projectorInit.seed });
    } else throw new ConfigError(["projector: no projector source; pass projector, a composite model, or projectorInit {seed}"]);
    owned.push(projector);
    const problems: string[] = [];
    if (projector.inDim !== tower.config.hidden) problems.push(`projector: input width ${projector.inDim} (${s.projectorSource ?? "built"}) != vision tower hidden size ${tower.config.hidden} (${s.towerSource})`);
    if (projector.outDim !== lm.config.hidden) problems.push(`projector: output width ${projector.outDim} (${s.projectorSource ?? "built"}) != LLM hidden size ${lm.config.hidden} (${s.languageModelSource})`);
    if (problems.length) throw new ConfigError(problems);
    const tokenizer = s.tokenizerSource ? await loadTokenizer(s.tokenizerSource) : undefined;
    const imageToken = tokenizer?.imageToken ? tokenizer.tokenToId(tokenizer.imageToken) : undefined;
    return {
      tower,
      projector,
      lm,
      tokenizer,
      preprocessor: preprocessorFor(s.preprocessor, tower.config.imageSize),
      preprocessMode: s.preprocessMode,
      visionLayer: s.visionLayer,
      imageTokenId: s.imageTokenIndex ?? imageToken ?? IMAGE_TOKEN_INDEX,
      gridSize: tower.config.imageSize / tower.config.patchSize,
      dispose() {
        tower.dispose();
        projector.dispose();
        lm.dispose();
      },
    };
  } catch (e) {
    for (const o of owned) o.dispose();
    throw e;
  }
}

// ---- forward, one job per function --------------------------------------------------------------------------

/** Vision features of hidden state `layer` (with CLS attention and keys) for pixelValues [B_img, 3, H, W]. */
export function encodeImages(tower: VisionTower, pixelValues: tf.Tensor4D, layer = -2): VisionOutput {
  return tower.forward(pixelValues, { layer });
}

/** Disposes every tensor of a VisionOutput. */
export function disposeVision(v: VisionOutput): void {
  tf.dispose([v.hidden, v.clsAttention, v.keys, v.keysMean]);
}

/** Runs the reducer on the vision features (gridSize from N = 1 + gridSize²). Returns new `tokens` [B_img, T, C]. */
export function reduceFeatures(reducer: Reducer, vision: VisionOutput): ReduceResult {
  const N = vision.hidden.shape[1];
  const gridSize = Math.round(Math.sqrt(N - 1));
  if (gridSize * gridSize + 1 !== N) throw new RangeError(`reduceFeatures: ${N} vision tokens are not CLS + a square grid of patches`);
  return reducer.reduce({ hidden: vision.hidden, clsAttention: vision.clsAttention, keysMean: vision.keysMean, gridSize });
}

/** tokens [B, T, Cv] -> LLM embeddings [B, T, D]. */
export function projectVisual(projector: Projector, tokens: tf.Tensor3D): tf.Tensor3D {
  return projector.apply(tokens);
}

export interface VlmTextBatch {
  /** Rows of ids with -200 where an image goes; ragged, or padded with `attentionMask` (0 = pad, dropped). */
  inputIds: number[][];
  labels?: number[][];
  attentionMask?: number[][];
  /** Which image each -200 uses (row-major order of the -200s); default 0, 1, 2, ... */
  imageRows?: number[];
}

export interface VlmBatch extends VlmTextBatch {
  /** [B_img, 3, H, W] preprocessed images; absent for a text-only batch. */
  pixelValues?: tf.Tensor4D;
}

export interface VlmForwardOptions {
  /** "right" (training, default) or "left" (generation). */
  padSide?: PadSide;
  /** Vision hidden-state index (default vlm.visionLayer). */
  layer?: number;
  /** Logits of the last position only ([B, 1, V]). */
  lastLogitsOnly?: boolean;
  /** LLM layers whose attention probabilities to return (for FastV-style analysis). */
  outputAttentions?: number[];
  outputHiddenStates?: boolean;
  /** In-LLM token reduction (FastV, TopV, keep schedules) of the spliced visual tokens; logits then cover the kept positions. */
  inLlm?: InLlmReducer;
}

export interface VlmTextOutput {
  logits: tf.Tensor3D; // [B, L, V] ([B, 1, V] with lastLogitsOnly)
  /** [B][L] labels expanded over the visual tokens (-100 there and on padding); when labels were given. */
  labels?: number[][];
  /** [B][L] 1 = real, 0 = padding. */
  mask: number[][];
  /** [B][...] positions of the visual tokens in the padded sequence. */
  visualPositions: number[][];
  imageSpans: ImageSpan[];
  /** Real length of each row. */
  lengths: number[];
  hiddenStates?: tf.Tensor3D[];
  attentions?: ForwardOutput["attentions"];
  /** With `inLlm`: visual tokens per layer, decisions, and the positions the logits hold. */
  reduction?: ReductionTrace;
}

export interface VlmForwardOutput extends VlmTextOutput {
  /** The reducer's tokens, pre-projector [B_img, T, Cv] (what training caches); undefined without images. */
  visualTokens?: tf.Tensor3D;
  /** [b][t] patch indices each visual token covers, and the kept patches (from the reducer). */
  provenance?: number[][][];
  keptIndices?: number[][];
}

/**
 * The VLM forward from already reduced, pre-projector visual tokens [B_img, T, Cv] (the path training takes with
 * cached features): projector -> splice -> LLM. Differentiable with respect to the projector's variables.
 * Returns new tensors: logits (and hiddenStates / attentions when asked).
 */
export function vlmForwardFromVisual(vlm: Vlm, visualTokens: tf.Tensor3D | undefined, batch: VlmTextBatch, opts: VlmForwardOptions = {}): VlmTextOutput {
  const projected = visualTokens ? projectVisual(vlm.projector, visualTokens) : undefined; // [B_img, T, D]
  let sp: ReturnType<typeof spliceImageTokens>;
  try {
    sp = spliceImageTokens(vlm.lm, batch.inputIds, projected, batch.imageRows, {
      labels: batch.labels,
      attentionMask: batch.attentionMask,
      padSide: opts.padSide ?? "right",
      vocab: vlm.lm.config.vocab,
      hidden: vlm.lm.config.hidden,
    });
  } finally {
    projected?.dispose();
  }
  try {
    const out = vlm.lm.forward({
      inputsEmbeds: sp.inputsEmbeds, // [B, L, D]
      attentionMask: sp.attentionMask, // [B, L]
      lastLogitsOnly: opts.lastLogitsOnly,
      outputAttentions: opts.outputAttentions,
      outputHiddenStates: opts.outputHiddenStates,
      ...(opts.inLlm ? { reduction: { reducer: opts.inLlm, visualPositions: sp.visualPositions } } : {}),
    });
    const result: VlmTextOutput = {
      logits: out.logits,
      mask: sp.mask,
      visualPositions: sp.visualPositions,
      imageSpans: sp.imageSpans,
      lengths: sp.lengths,
    };
    if (sp.labels) result.labels = sp.labels;
    if (out.hiddenStates) result.hiddenStates = out.hiddenStates;
    if (out.attentions) result.attentions = out.attentions;
    if (out.reduction) result.reduction = out.reduction;
    return result;
  } finally {
    tf.dispose([sp.inputsEmbeds, sp.attentionMask]);
  }
}

/**
 * The full VLM forward: tower -> reducer -> projector -> splice -> LLM. Returns new tensors: logits and
 * visualTokens (the caller disposes both).
 */
export function vlmForward(vlm: Vlm, batch: VlmBatch, reducer: Reducer, opts: VlmForwardOptions = {}): VlmForwardOutput {
  const reduced = batch.pixelValues ? encodeAndReduce(vlm, batch.pixelValues, reducer, opts.layer) : undefined;
  try {
    const out: VlmForwardOutput = vlmForwardFromVisual(vlm, reduced?.tokens, batch, opts);
    if (reduced) {
      out.visualTokens = reduced.tokens;
      out.provenance = reduced.provenance;
      if (reduced.keptIndices) out.keptIndices = reduced.keptIndices;
    }
    return out;
  } catch (e) {
    reduced?.tokens.dispose();
    throw e;
  }
}

/** Tower + reducer for a batch of images; only the reduced tokens survive. */
export function encodeAndReduce(vlm: Vlm, pixelValues: tf.Tensor4D, reducer: Reducer, layer = vlm.visionLayer): ReduceResult {
  const vision = encodeImages(vlm.tower, pixelValues, layer);
  try {
    return reduceFeatures(reducer, vision);
  } finally {
    disposeVision(vision);
  }
}

// ---- generation ------------------------------------------------------------------------------------------------

export interface VlmGenerateOptions extends Omit<GenerateOptions, "attentionMask"> {
  layer?: number;
  /** In-LLM token reduction applied in the prefill (decoding then attends over each layer's reduced cache). */
  inLlm?: InLlmReducer;
}

/**
 * Greedy decoding: prefill the left-padded spliced embeddings once into a KV cache, then one token per step (the same
 * steps as models/generate.ts greedyGenerate, which only takes ids). Returns each row's new ids (ending with the EOS
 * id when the row stopped on one). The EOS id is not defaulted: pass `vlm.lm.config.eosTokenIds` to stop on it.
 */
export async function vlmGenerate(vlm: Vlm, batch: VlmBatch, reducer: Reducer, opts: VlmGenerateOptions): Promise<number[][]> {
  if (!Number.isInteger(opts.maxNewTokens) || opts.maxNewTokens < 0) throw new RangeError(`vlmGenerate: maxNewTokens must be a non-negative integer, got ${opts.maxNewTokens}`);
  const B = batch.inputIds.length;
  const out: number[][] = batch.inputIds.map(() => []);
  if (opts.maxNewTokens === 0 || B === 0) return out;
  const eos = new Set(opts.eosTokenId === undefined ? [] : Array.isArray(opts.eosTokenId) ? opts.eosTokenId : [opts.eosTokenId]);
  const done = new Array<boolean>(B).fill(false);

  const reduced = batch.pixelValues ? encodeAndReduce(vlm, batch.pixelValues, reducer, opts.layer) : undefined;
  const projected = reduced ? projectVisual(vlm.projector, reduced.tokens) : undefined;
  reduced?.tokens.dispose();
  let sp: ReturnType<typeof spliceImageTokens>;
  try {
    sp = spliceImageTokens(vlm.lm, batch.inputIds, projected, batch.imageRows, { attentionMask: batch.attentionMask, padSide: "left", vocab: vlm.lm.config.vocab, hidden: vlm.lm.config.hidden });
  } finally {
    projected?.dispose();
  }
  const cache = vlm.lm.newCache();
  try {
    const reduction = opts.inLlm ? { reducer: opts.inLlm, visualPositions: sp.visualPositions } : undefined;
    let logits = vlm.lm.forward({ inputsEmbeds: sp.inputsEmbeds, attentionMask: sp.attentionMask, cache, lastLogitsOnly: true, reduction }).logits; // [B, 1, V]
    tf.dispose([sp.inputsEmbeds, sp.attentionMask]);
    for (let step = 0; ; step++) {
      const nextT = tf.tidy(() => tf.argMax(tf.reshape(logits, [B, -1]), 1)); // [B]
      const next = Array.from(await nextT.data());
      tf.dispose([logits, nextT]);
      next.forEach((t, r) => {
        if (done[r]) return;
        out[r]!.push(t);
        if (eos.has(t)) done[r] = true;
      });
      if (step + 1 >= opts.maxNewTokens || done.every(Boolean)) break;
      logits = decodeStep(vlm.lm, next, cache);
    }
  } finally {
    tf.dispose([sp.inputsEmbeds, sp.attentionMask]);
    cache.dispose();
  }
  return out;
}
