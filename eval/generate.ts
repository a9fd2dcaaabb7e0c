// Batched greedy generation for evaluation, timed stage by stage:
//   images [B, 3, H, W] -> vision tower -> reducer -> projector -> splice into the left-padded prompts
//   -> LLM prefill into a KV cache (last logits only) -> one token per step for every row still running.
// A row stops on an EOS id or (stopOnNewline) once its decoded text holds a newline; the other rows go on. Greedy
// argmax on left-padded rows is deterministic, and a row's tokens do not depend on the other rows of its batch
// (padding is masked out). Built on the pieces of models/llava.ts (vlmGenerate has neither newline stops nor timings).
// Every call leaves tf.memory().numTensors unchanged.
import { tf } from "../core/backend.js";
import type { Tokenizer } from "../data/tokenizer.js";
import { disposeVision, encodeImages, projectVisual, reduceFeatures, type Vlm } from "../models/llava.js";
import { spliceImageTokens } from "../models/splice.js";
import type { KVCache } from "../models/kv_cache.js";
import { decodeStep } from "../models/generate.js";
import type { Reducer } from "../reduce/reducer.js";
import type { InLlmReducer } from "../reduce/in_llm.js";

export interface GenerateRequest {
  /** Prompt ids with one IMAGE_TOKEN_INDEX (-200) where the image goes. */
  inputIds: number[];
  /** Preprocessed image [3, H, W]. */
  pixels: Float32Array;
}

export interface EvalGenerateOptions {
  maxNewTokens: number;
  /** Stop ids (the model's EOS). */
  eosTokenIds: readonly number[];
  /** Stop a row at its first newline (default true). */
  stopOnNewline?: boolean;
  /** Decodes the new ids (needed for text and newline stops). */
  tokenizer: Tokenizer;
  /** [3, H, W] of every image. */
  imageShape: [number, number, number];
  /** Vision hidden-state index (default vlm.visionLayer). */
  layer?: number;
  /** Token reduction inside the LLM (FastV, TopV, keep schedules), applied in the prefill. */
  inLlm?: InLlmReducer;
}

export type StopReason = "eos" | "newline" | "length";

export interface GeneratedRow {
  /** New ids, the stop token included. */
  ids: number[];
  /** Decoded answer: special tokens skipped, cut at the first newline, stripped (as lmms-eval strips outputs). */
  text: string;
  stop: StopReason;
  /** Prompt length in the LLM: text tokens + visual tokens. */
  promptTokens: number;
}

/** Wall-clock milliseconds of each stage for the whole batch. */
export interface GenerateTimings {
  towerMs: number;
  reducerMs: number;
  /** Projector + splice + LLM prefill (to the first token's logits). */
  prefillMs: number;
  /** All decode steps after the first token. */
  decodeMs: number;
  /** Decode steps run (forward calls after prefill). */
  decodeSteps: number;
}

export interface GenerateBatchResult {
  rows: GeneratedRow[];
  timings: GenerateTimings;
  /** Visual tokens per image after the reducer. */
  visualTokens: number;
  /** Largest KV cache held (bytes, padded batch, all layers' keys + values). */
  kvPeakBytes: number;
  /** With inLlm: visual tokens per image entering each LLM layer (its cache holds text + these). */
  visualPerLayer?: number[];
}

/** Waits until `t` is computed (reads one element; enough on every backend) and returns the time. */
async function settled(t: tf.Tensor): Promise<number> {
  const one = tf.tidy(() => tf.slice(tf.reshape(t, [-1]), [0], [1]));
  await one.data();
  one.dispose();
  return performance.now();
}

function cacheBytes(cache: KVCache): number {
  let n = 0;
  for (const kv of cache.layers) if (kv) n += (kv.keys.size + kv.values.size) * 4;
  return n;
}

/** The decoded answer of a row's new ids, cut at the first newline and stripped. */
export function answerText(tok: Tokenizer, ids: readonly number[]): string {
  const text = tok.decode(ids, { skipSpecialTokens: true });
  const nl = text.indexOf("\n");
  return (nl >= 0 ? text.slice(0, nl) : text).trim();
}

/**
 * Greedy generation for a batch of image + prompt requests. Returns each row's ids and text with stage timings.
 * @throws RangeError on a bad request (no image placeholder, wrong pixel count); tfjs errors propagate.
 */
export async function generateBatch(vlm: Vlm, reducer: Reducer, reqs: readonly GenerateRequest[], opts: EvalGenerateOptions): Promise<GenerateBatchResult> {
  const B = reqs.length;
  if (B === 0) throw new RangeError("generateBatch: no requests");
  if (!Number.isInteger(opts.maxNewTokens) || opts.maxNewTokens < 1) throw new RangeError(`generateBatch: maxNewTokens must be a positive integer, got ${opts.maxNewTokens}`);
  const [C, H, W] = opts.imageShape;
  const flat = new Float32Array(B * C * H * W);
  reqs.forEach((r, i) => {
    if (r.pixels.length !== C * H * W) throw new RangeError(`generateBatch: request ${i} has ${r.pixels.length} pixel values, expected ${C}x${H}x${W}`);
    flat.set(r.pixels, i * C * H * W);
  });
  const eos = new Set(opts.eosTokenIds);
  const stopOnNewline = opts.stopOnNewline ?? true;
  const out: number[][] = reqs.map(() => []);
  const stop: (StopReason | undefined)[] = new Array(B).fill(undefined);
  const timings: GenerateTimings = { towerMs: 0, reducerMs: 0, prefillMs: 0, decodeMs: 0, decodeSteps: 0 };

  // Vision tower, then reducer, each timed on its own.
  const pixelValues = tf.tensor4d(flat, [B, C, H, W]);
  let t0 = performance.now();
  const vision = encodeImages(vlm.tower, pixelValues, opts.layer ?? vlm.visionLayer);
  pixelValues.dispose();
  let t1 = await settled(vision.hidden);
  timings.towerMs = t1 - t0;
  let reduced;
  try {
    t0 = performance.now();
    reduced = reduceFeatures(reducer, vision);
    t1 = await settled(reduced.tokens);
    timings.reducerMs = t1 - t0;
  } finally {
    disposeVision(vision);
  }
  const visualTokens = reduced.tokens.shape[1];

  // Prefill: projector -> splice (left padding) -> LLM into the cache.
  const cache = vlm.lm.newCache();
  let kvPeakBytes = 0;
  let promptTokens: number[] = [];
  let visualPerLayer: number[] | undefined;
  try {
    t0 = performance.now();
    const projected = projectVisual(vlm.projector, reduced.tokens); // [B, T, D]
    reduced.tokens.dispose();
    let sp: ReturnType<typeof spliceImageTokens>;
    try {
      sp = spliceImageTokens(vlm.lm, reqs.map((r) => r.inputIds), projected, undefined, { padSide: "left", vocab: vlm.lm.config.vocab, hidden: vlm.lm.config.hidden });
    } finally {
      projected.dispose();
    }
    promptTokens = sp.lengths;
    let logits: tf.Tensor3D;
    try {
      const reduction = opts.inLlm ? { reducer: opts.inLlm, visualPositions: sp.visualPositions } : undefined;
      const pre = vlm.lm.forward({ inputsEmbeds: sp.inputsEmbeds, attentionMask: sp.attentionMask, cache, lastLogitsOnly: true, reduction }); // [B, 1, V]
      logits = pre.logits;
      visualPerLayer = pre.reduction?.visualPerLayer;
    } finally {
      tf.dispose([sp.inputsEmbeds, sp.attentionMask]);
    }
    for (let step = 0; ; step++) {
      const nextT = tf.tidy(() => tf.argMax(tf.reshape(logits, [B, -1]), 1)); // [B]
      const next = Array.from(await nextT.data());
      tf.dispose([logits, nextT]);
      kvPeakBytes = Math.max(kvPeakBytes, cacheBytes(cache));
      if (step === 0) {
        t1 = performance.now();
        timings.prefillMs = t1 - t0;
        t0 = t1;
      }
      next.forEach((t, r) => {
        if (stop[r]) return;
        out[r]!.push(t);
        if (eos.has(t)) stop[r] = "eos";
        else if (stopOnNewline && opts.tokenizer.decode(out[r]!, { skipSpecialTokens: true }).includes("\n")) stop[r] = "newline";
        else if (out[r]!.length >= opts.maxNewTokens) stop[r] = "length";
      });
      if (stop.every(Boolean)) break;
      logits = decodeStep(vlm.lm, next, cache);
      timings.decodeSteps++;
    }
    timings.decodeMs = performance.now() - t0;
  } finally {
    reduced.tokens.dispose(); // no-op when already disposed
    cache.dispose();
  }
  const rows = out.map((ids, r): GeneratedRow => ({ ids, text: answerText(opts.tokenizer, ids), stop: stop[r]!, promptTokens: promptTokens[r]! }));
  return { rows, timings, visualTokens, kvPeakBytes, ...(visualPerLayer ? { visualPerLayer } : {}) };
}
