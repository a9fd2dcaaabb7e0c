// VisionZip (Yang et al., CVPR 2025): keep the dominant tokens CLS attends to most, merge the rest into a few
// contextual tokens by key similarity. Restates the official code (dvlab-research/VisionZip 3151f6d,
// visionzip/clip_encoder.py L50-85) exactly, batched on tensors; see ../shared/reference/visionzip.md §1.2-1.3.
//
// Per image, with N tokens (CLS at 0, patches 1..N-1 raster order), D = dominant (CLS included), c = contextual:
//   1. score[j] = Σ_h attention[h][0][j], j = 1..N-1            (sum over heads, CLS->CLS ignored)
//   2. dominant = {0} ∪ top-(D-1) patches by score              (ties: score desc, index asc)
//   3. emit hidden[dominant] in ascending token index           (CLS first)
//   4. remaining R = the other tokens ascending, M = N - D; u = key / ‖key‖₂ (no eps)
//   5. step = max(1, floor(M / c)); targets t_i = R[i·step], i < c; the rest of R (ascending) are merged
//   6. member r -> slot argmax_i <u_r, u_{t_i}>                 (first i on exact ties, like torch.argmax)
//   7. slot i = hidden[t_i] + mean(hidden[members of i])       (empty slot: hidden[t_i]; NOT a mean over all)
//   8. output = [dominant tokens] ++ [slots 0..c-1]
// Index selection (top-k, argmax over the [M-c, c] similarities) runs in JS so ties break exactly as torch on CPU
// does; gathers, normalisation, the similarity matmul and the scatter-mean (one-hot matmul) are tensor ops.
import { tf } from "../core/backend.js";
import { ConfigError } from "../core/errors.js";
import { checkVisionZipBudget, visionZipSplit } from "./budget.js";
import { boolParam, checkFeatures, checkParamKeys, intParam, type ReducerParams } from "./params.js";
import type { Reducer, ReduceResult } from "./reducer.js";

export interface VisionZipInputs {
  attention: tf.Tensor; // CLS rows [B, H, N] or full softmax attention [B, H, N, N] of layer -2
  hidden: tf.Tensor3D; // [B, N, C] layer -2 output (CLS at 0)
  keys: tf.Tensor3D; // [B, N, Ck] layer -2 keys averaged over heads (the official `metric`)
}

export interface VisionZipOptions {
  dominant: number; // tokens kept by CLS attention, CLS included (official `dominant`; golden `dominant`)
  contextual: number; // merged slots
  /**
   * true (default, official): CLS is the first output token. false: CLS is dropped from `tokens` (as LLaVA's
   * `patch` feature selection would), so tokens = [dominant patches asc] ++ [slots], dominant - 1 + contextual rows;
   * CLS still counts as one of the `dominant` and `dominantIndices` still starts with 0.
   */
  keepCls?: boolean;
}

export interface VisionZipResult {
  tokens: tf.Tensor3D; // [B, dominant + contextual, C] (one fewer with keepCls false)
  dominantIndices: number[][]; // [B][dominant] token indices, ascending, CLS (0) first = golden dominant_indices_sorted
  keepIndices: number[][]; // [B][dominant] 0 then the top-k picks in score order (official return value)
  targetIndices: number[][]; // [B][contextual] token index of each slot's target = golden target_indices
  mergeIndices: number[][]; // [B][M - contextual] the other remaining tokens, ascending = golden merge_indices
  assignment: number[][]; // [B][M - contextual] slot of each mergeIndices entry = golden assignment
  counts: number[][]; // [B][contextual] members per slot (may be 0) = golden counts
}

/** Runs VisionZip on a batch. Leaves no tensors behind besides `tokens`; inputs are not disposed. */
export function visionZip(inputs: VisionZipInputs, opts: VisionZipOptions): VisionZipResult {
  const { attention, hidden, keys } = inputs;
  if (hidden.rank !== 3) throw new Error(`visionZip: hidden must be [B, N, C], got [${hidden.shape.join(", ")}]`);
  const [B, N, C] = hidden.shape;
  if (keys.rank !== 3 || keys.shape[0] !== B || keys.shape[1] !== N) {
    throw new Error(`visionZip: keys must be [B, N, Ck] = [${B}, ${N}, Ck], got [${keys.shape.join(", ")}]`);
  }
  const full = attention.rank === 4;
  const aShape = attention.shape;
  if (!(attention.rank === 3 || full) || aShape[0] !== B || aShape[aShape.length - 1] !== N || (full && aShape[2] !== N)) {
    throw new Error(
      `visionZip: attention must be CLS rows [B, H, N] or full [B, H, N, N] with B = ${B}, N = ${N}, got [${aShape.join(", ")}]`,
    );
  }
  const { dominant: D, contextual: c } = opts;
  checkVisionZipBudget(D, c, N);
  const keepCls = opts.keepCls ?? true;
  const H = aShape[1]!;
  const M = N - D; // remaining tokens
  const step = Math.max(1, Math.floor(M / c));

  // 1. score[b][j-1] = Σ_h attention[b][h][0][j]
  const scoreT = tf.tidy(() => {
    const rows = full ? tf.slice(attention, [0, 0, 0, 0], [B, H, 1, N]).reshape([B, H, N]) : attention; // [B, H, N]
    return tf.sum(tf.slice(rows, [0, 0, 1], [B, H, N - 1]), 1); // [B, N-1]
  });
  const scores = scoreT.dataSync() as Float32Array;
  scoreT.dispose();

  // 2-5. index bookkeeping over N ints per image
  const dominantIndices: number[][] = [];
  const keepIndices: number[][] = [];
  const targetIndices: number[][] = [];
  const mergeIndices: number[][] = [];
  for (let b = 0; b < B; b++) {
    const order = Array.from({ length: N - 1 }, (_, p) => p);
    const s = scores.subarray(b * (N - 1), (b + 1) * (N - 1));
    order.sort((x, y) => s[y]! - s[x]! || x - y);
    const picks = order.slice(0, D - 1).map((p) => p + 1);
    keepIndices.push([0, ...picks]);
    const isDominant = new Uint8Array(N);
    isDominant[0] = 1;
    for (const j of picks) isDominant[j] = 1;
    const dom: number[] = [];
    const rest: number[] = [];
    for (let j = 0; j < N; j++) (isDominant[j] ? dom : rest).push(j);
    dominantIndices.push(dom);
    const isTarget = new Uint8Array(M);
    for (let i = 0; i < c; i++) isTarget[i * step] = 1;
    targetIndices.push(rest.filter((_, pos) => isTarget[pos]));
    mergeIndices.push(rest.filter((_, pos) => !isTarget[pos]));
  }
  const nMerge = M - c;

  // 6. cosine similarity of normalised head-mean keys, members x targets; argmax in JS (first max wins)
  const assignment: number[][] = [];
  if (nMerge > 0) {
    const simT = tf.tidy(() => {
      const keysFlat = tf.reshape(keys, [B * N, keys.shape[2]]); // [B*N, Ck]
      const unit = (idx: number[][], rows: number) => {
        const k = tf.gather(keysFlat, tf.tensor1d(flatIndex(idx, N), "int32")).reshape([B, rows, keys.shape[2]]);
        return tf.div(k, tf.sqrt(tf.sum(tf.square(k), -1, true))); // [B, rows, Ck]
      };
      return tf.matMul(unit(mergeIndices, nMerge), unit(targetIndices, c), false, true); // [B, M-c, c]
    });
    const sim = simT.dataSync() as Float32Array;
    simT.dispose();
    for (let b = 0; b < B; b++) {
      const row: number[] = new Array<number>(nMerge);
      for (let r = 0; r < nMerge; r++) {
        const base = (b * nMerge + r) * c;
        let best = 0;
        let bestVal = sim[base]!;
        for (let i = 1; i < c; i++) {
          const v = sim[base + i]!;
          if (v > bestVal || (Number.isNaN(v) && !Number.isNaN(bestVal))) {
            best = i;
            bestVal = v;
          }
        }
        row[r] = best;
      }
      assignment.push(row);
    }
  } else {
    for (let b = 0; b < B; b++) assignment.push([]);
  }

  // 7. slot = target + sum(members) / max(count, 1), via a one-hot [B, c, N] matmul over the hidden states
  const counts: number[][] = [];
  const oneHot = new Float32Array(B * c * N);
  for (let b = 0; b < B; b++) {
    const cnt = new Array<number>(c).fill(0);
    mergeIndices[b]!.forEach((tok, r) => {
      const slot = assignment[b]![r]!;
      cnt[slot]!++;
      oneHot[(b * c + slot) * N + tok] = 1;
    });
    counts.push(cnt);
  }
  const divisor = Float32Array.from(counts.flat(), (n) => Math.max(n, 1));

  // 8. [dominant asc] ++ [slots]
  const tokens = tf.tidy(() => {
    const hiddenFlat = tf.reshape(hidden, [B * N, C]); // [B*N, C]
    const domIdx = keepCls ? dominantIndices : dominantIndices.map((d) => d.slice(1));
    const nDom = keepCls ? D : D - 1;
    const dom = tf.gather(hiddenFlat, tf.tensor1d(flatIndex(domIdx, N), "int32")).reshape([B, nDom, C]);
    const targets = tf.gather(hiddenFlat, tf.tensor1d(flatIndex(targetIndices, N), "int32")).reshape([B, c, C]);
    const sums = tf.matMul(tf.tensor3d(oneHot, [B, c, N]), hidden); // [B, c, C]
    const slots = tf.add(targets, tf.div(sums, tf.tensor3d(divisor, [B, c, 1]))); // [B, c, C]
    return tf.concat([dom, slots], 1) as tf.Tensor3D; // [B, nDom + c, C]
  });

  return { tokens, dominantIndices, keepIndices, targetIndices, mergeIndices, assignment, counts };
}

/** Per-image token indices -> row indices into the [B*N, ...] flattened batch. */
function flatIndex(idx: number[][], N: number): number[] {
  return idx.flatMap((row, b) => row.map((j) => b * N + j));
}

/**
 * The `visionzip` reducer. Params: `budget` (total tokens, split by visionZipSplit; default 64 = 54 + 10) or
 * `dominant` + `contextual` explicitly (with budget too, they must add up to it); `keepCls` (default true).
 * Provenance (0-based patch indices): a dominant patch token covers itself; CLS covers [] (no patch);
 * a contextual slot covers its target then its members, ascending.
 * keptIndices: the dominant patches (token index - 1), ascending, CLS excluded.
 */
export function visionZipReducer(params: ReducerParams = {}): Reducer {
  checkParamKeys("visionzip", params, ["budget", "dominant", "contextual", "keepCls"]);
  const split = resolveSplit(params);
  const keepCls = boolParam(params, "keepCls", true);
  return {
    name: "visionzip",
    params: { ...split, keepCls },
    reduce(f): ReduceResult {
      checkFeatures("visionzip", f);
      const r = visionZip({ attention: f.clsAttention, hidden: f.hidden, keys: f.keysMean }, { ...split, keepCls });
      const provenance = r.dominantIndices.map((dom, b) => {
        const rows: number[][] = (keepCls ? dom : dom.slice(1)).map((j) => (j === 0 ? [] : [j - 1]));
        const members: number[][] = r.targetIndices[b]!.map(() => []);
        r.mergeIndices[b]!.forEach((tok, k) => members[r.assignment[b]![k]!]!.push(tok - 1));
        r.targetIndices[b]!.forEach((t, i) => rows.push([t - 1, ...members[i]!]));
        return rows;
      });
      const keptIndices = r.dominantIndices.map((dom) => dom.slice(1).map((j) => j - 1));
      return { tokens: r.tokens, provenance, keptIndices };
    },
  };
}

function resolveSplit(params: ReducerParams): { dominant: number; contextual: number } {
  const hasD = params.dominant !== undefined;
  const hasC = params.contextual !== undefined;
  if (hasD !== hasC) {
    const missing = hasD ? "contextual" : "dominant";
    // One of the pair with a budget: the other is the rest of the budget.
    if (params.budget !== undefined) {
      const budget = intParam(params, "budget", undefined, 2);
      const given = intParam(params, hasD ? "dominant" : "contextual", undefined, 1);
      const split = hasD ? { dominant: given, contextual: budget - given } : { dominant: budget - given, contextual: given };
      checkVisionZipBudget(split.dominant, split.contextual);
      return split;
    }
    throw new ConfigError([
      `reducer.${missing}: set it too (or set reducer.budget), since reducer.${hasD ? "dominant" : "contextual"} is set`,
    ]);
  }
  if (hasD && hasC) {
    checkVisionZipBudget(params.dominant, params.contextual);
    const split = { dominant: params.dominant as number, contextual: params.contextual as number };
    if (params.budget !== undefined && intParam(params, "budget", undefined, 2) !== split.dominant + split.contextual) {
      throw new ConfigError([
        `reducer.budget: ${String(params.budget)} != dominant + contextual = ${split.dominant + split.contextual}`,
      ]);
    }
    return split;
  }
  return visionZipSplit(intParam(params, "budget", 64, 2));
}
