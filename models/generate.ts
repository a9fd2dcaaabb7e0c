// Greedy decoding with the KV cache: prefill the (left-padded) prompts once, then one token per step; a row stops
// after it emits an EOS id (the EOS id is its last output).
import { tf } from "../core/backend.js";
import type { KVCache } from "./kv_cache.js";
import type { LanguageModel } from "./llama.js";

/** One cached decode step: each row's next id [B] -> last-position logits [B, 1, V] (the cache grows by one). */
export function decodeStep(lm: LanguageModel, next: readonly number[], cache: KVCache): tf.Tensor3D {
  const B = next.length;
  const ids = tf.tensor2d(next as number[], [B, 1], "int32");
  const mask = tf.ones([B, 1]) as tf.Tensor2D;
  try {
    return lm.forward({ inputIds: ids, attentionMask: mask, cache, lastLogitsOnly: true }).logits;
  } finally {
    tf.dispose([ids, mask]);
  }
}

export interface GenerateOptions {
  maxNewTokens: number;
  /** Stop ids. Not defaulted from the config: pass `lm.config.eosTokenIds` to stop on the model's EOS. */
  eosTokenId?: number | number[];
  /** Rows already padded to one length (left padding), 1 = real, 0 = pad. Without it, rows are left-padded here. */
  attentionMask?: number[][];
}

/** Returns the new ids of each row (at most maxNewTokens; ending with the EOS id when the row stopped on one). */
export async function greedyGenerate(lm: LanguageModel, inputIds: number[][], opts: GenerateOptions): Promise<number[][]> {
  const B = inputIds.length;
  if (B === 0) return [];
  if (!Number.isInteger(opts.maxNewTokens) || opts.maxNewTokens < 0) throw new Error(`generate: maxNewTokens must be a non-negative integer, got ${opts.maxNewTokens}`);
  const { ids, mask } = leftPad(inputIds, opts.attentionMask, lm.config.padTokenId, lm.config.vocab);
  const eos = new Set(opts.eosTokenId === undefined ? [] : Array.isArray(opts.eosTokenId) ? opts.eosTokenId : [opts.eosTokenId]);
  const out: number[][] = inputIds.map(() => []);
  const done = new Array<boolean>(B).fill(false);
  if (opts.maxNewTokens === 0) return out;

  const cache = lm.newCache();
  try {
    let stepIds = tf.tensor2d(ids, [B, ids.length / B], "int32"); // [B, T] prompt, then [B, 1]
    let stepMask = tf.tensor2d(mask, [B, ids.length / B], "float32");
    for (let step = 0; ; step++) {
      const { logits } = lm.forward({ inputIds: stepIds, attentionMask: stepMask, cache, lastLogitsOnly: true }); // [B, 1, V]
      const nextT = tf.tidy(() => tf.argMax(logits.reshape([B, -1]), 1)); // [B]
      const next = Array.from(await nextT.data());
      tf.dispose([logits, nextT, stepIds, stepMask]);
      next.forEach((t, r) => {
        if (done[r]) return;
        out[r]!.push(t);
        if (eos.has(t)) done[r] = true;
      });
      if (step + 1 >= opts.maxNewTokens || done.every(Boolean)) break;
      stepIds = tf.tensor2d(next, [B, 1], "int32");
      stepMask = tf.ones([B, 1]);
    }
  } finally {
    cache.dispose();
  }
  return out;
}

/** Flat row-major ids and mask [B, T], left-padded to the longest row (or checked against a given mask). */
function leftPad(rows: number[][], given: number[][] | undefined, padId: number | undefined, vocab: number): { ids: number[]; mask: number[] } {
  const T = Math.max(...rows.map((r) => r.length));
  const pad = padId !== undefined && padId >= 0 && padId < vocab ? padId : 0;
  const ids: number[] = [];
  const mask: number[] = [];
  rows.forEach((row, r) => {
    if (row.length === 0) throw new Error(`generate: inputIds row ${r} is empty`);
    const bad = row.findIndex((t) => !Number.isInteger(t) || t < 0 || t >= vocab);
    if (bad >= 0) throw new Error(`generate: inputIds row ${r}, position ${bad}: id ${row[bad]} is outside the vocabulary 0..${vocab - 1}`);
    if (given) {
      const m = given[r];
      if (!m || m.length !== row.length || row.length !== T) {
        throw new Error(`generate: with attentionMask every row must have the same length as its mask row (row ${r}: ${row.length} ids, ${m?.length ?? "no"} mask entries, longest row ${T})`);
      }
      if (!m.some((v) => v !== 0)) throw new Error(`generate: attentionMask row ${r} has no real token`);
      ids.push(...row);
      mask.push(...m.map((v) => (v ? 1 : 0)));
    } else {
      for (let i = row.length; i < T; i++) {
        ids.push(pad);
        mask.push(0);
      }
      ids.push(...row);
      for (let i = 0; i < row.length; i++) mask.push(1);
    }
  });
  return { ids, mask };
}
