// Baseline pre-LLM reducers: none (all patches), uniform (evenly spaced patches), pool (2-D average pooling of the
// patch grid), random (seeded). All drop CLS, as LLaVA's `patch` feature selection does, and take `budget` =
// output tokens per image (default 64). Patch p (0-based) is token p + 1, row floor(p / G), column p % G.
import { tf } from "../core/backend.js";
import { ConfigError } from "../core/errors.js";
import { createRng } from "../core/rng.js";
import { checkFeatures, checkParamKeys, intParam, type ReducerParams } from "./params.js";
import type { ReduceFeatures, Reducer, ReduceResult } from "./reducer.js";

/** `none`: every patch token in raster order, CLS dropped (LLaVA-1.5 default, 576 tokens). */
export function noneReducer(params: ReducerParams = {}): Reducer {
  checkParamKeys("none", params, []);
  return {
    name: "none",
    params: {},
    reduce(f) {
      const { B, P } = checkFeatures("none", f);
      const all = Array.from({ length: B }, () => Array.from({ length: P }, (_, p) => p));
      return keepPatches(f, all);
    },
  };
}

/**
 * `uniform`: `budget` patches evenly spaced in raster order, at the centres of `budget` equal stretches:
 * patch_k = floor((2k + 1) · P / (2 · budget)), k = 0..budget-1 (distinct while budget <= P).
 */
export function uniformReducer(params: ReducerParams = {}): Reducer {
  checkParamKeys("uniform", params, ["budget"]);
  const budget = intParam(params, "budget", 64);
  return {
    name: "uniform",
    params: { budget },
    reduce(f) {
      const { B, P } = checkFeatures("uniform", f);
      checkBudget(budget, P);
      const picks = Array.from({ length: budget }, (_, k) => Math.floor(((2 * k + 1) * P) / (2 * budget)));
      return keepPatches(f, Array.from({ length: B }, () => picks.slice()));
    },
  };
}

/**
 * `pool`: 2-D average pooling of the G x G patch grid to rows x cols = budget output tokens (raster order).
 * rows = the largest divisor of budget <= sqrt(budget), cols = budget / rows: a square budget pools to a square
 * (576 -> 64 is 24x24 -> 8x8, 3x3 windows); 128 -> 8 x 16, 192 -> 12 x 16; rows and cols must be <= G.
 * Bins follow torch adaptive_avg_pool2d: row bin i spans [floor(i·G/rows), ceil((i+1)·G/rows)), same for columns
 * (bins overlap when G is not a multiple). Each output is the plain mean of its bin's patches.
 */
export function poolReducer(params: ReducerParams = {}): Reducer {
  checkParamKeys("pool", params, ["budget"]);
  const budget = intParam(params, "budget", 64);
  const [rows, cols] = poolGrid(budget);
  return {
    name: "pool",
    params: { budget, rows, cols },
    reduce(f) {
      const { B, N } = checkFeatures("pool", f);
      const G = f.gridSize;
      if (rows > G || cols > G) {
        throw new ConfigError([`reducer.budget: ${budget} pools to ${rows} x ${cols}, larger than the ${G} x ${G} patch grid`]);
      }
      const bins: number[][] = [];
      const weights = new Float32Array(budget * N); // [T, N]: 1/|bin| on each bin's patch tokens, 0 on CLS
      for (let i = 0; i < rows; i++) {
        const [r0, r1] = [Math.floor((i * G) / rows), Math.ceil(((i + 1) * G) / rows)];
        for (let j = 0; j < cols; j++) {
          const [c0, c1] = [Math.floor((j * G) / cols), Math.ceil(((j + 1) * G) / cols)];
          const bin: number[] = [];
          for (let r = r0; r < r1; r++) for (let c = c0; c < c1; c++) bin.push(r * G + c);
          for (const p of bin) weights[bins.length * N + p + 1] = 1 / bin.length;
          bins.push(bin);
        }
      }
      const tokens = tf.tidy(() => {
        const w = tf.tensor3d(weights, [1, budget, N]).tile([B, 1, 1]); // [B, T, N]
        return tf.matMul(w, f.hidden) as tf.Tensor3D; // [B, T, C]
      });
      return { tokens, provenance: Array.from({ length: B }, () => bins.map((bin) => bin.slice())) };
    },
  };
}

/** rows x cols = budget with rows the largest divisor <= sqrt(budget). */
export function poolGrid(budget: number): [number, number] {
  let rows = Math.floor(Math.sqrt(budget));
  while (budget % rows !== 0) rows--;
  return [rows, budget / rows];
}

/**
 * `random`: `budget` distinct patches per image, drawn by a partial Fisher-Yates shuffle from core/rng.ts
 * (xoshiro128**, `seed`, default 0), emitted in raster order. The generator lives in the reducer: images draw in
 * turn (budget draws each), so a freshly built reducer with the same seed repeats the same sequence, whatever the
 * batch sizes.
 */
export function randomReducer(params: ReducerParams = {}): Reducer {
  checkParamKeys("random", params, ["budget", "seed"]);
  const budget = intParam(params, "budget", 64);
  const seed = intParam(params, "seed", 0, 0);
  if (!Number.isSafeInteger(seed)) throw new ConfigError([`reducer.seed: must be a safe integer, got ${seed}`]);
  const rng = createRng(seed);
  return {
    name: "random",
    params: { budget, seed },
    reduce(f) {
      const { B, P } = checkFeatures("random", f);
      checkBudget(budget, P);
      const picks = Array.from({ length: B }, () => {
        const perm = Array.from({ length: P }, (_, p) => p);
        for (let k = 0; k < budget; k++) {
          const j = k + rng.nextInt(P - k);
          [perm[k], perm[j]] = [perm[j]!, perm[k]!];
        }
        return perm.slice(0, budget).sort((x, y) => x - y);
      });
      return keepPatches(f, picks);
    },
  };
}

function checkBudget(budget: number, P: number): void {
  if (budget > P) throw new ConfigError([`reducer.budget: ${budget} exceeds the ${P} patch tokens`]);
}

/** Gathers patches picks[b] (0-based, ascending) of each image: tokens [B, T, C], provenance [[p]]. */
function keepPatches(f: ReduceFeatures, picks: number[][]): ReduceResult {
  const [B, N, C] = f.hidden.shape;
  const T = picks[0]?.length ?? 0;
  const tokens = tf.tidy(() => {
    const flat = tf.reshape(f.hidden, [B * N, C]); // [B*N, C]
    const rows = tf.tensor1d(picks.flatMap((row, b) => row.map((p) => b * N + p + 1)), "int32");
    return tf.gather(flat, rows).reshape([B, T, C]) as tf.Tensor3D; // [B, T, C]
  });
  return { tokens, provenance: picks.map((row) => row.map((p) => [p])), keptIndices: picks.map((row) => row.slice()) };
}
