// In-LLM token reduction: one interface for reducers that act inside the decoder (FastV, TopV, G-Search / P-Sigmoid
// keep schedules). A reducer names its decision points ("entering layer l") and what each needs from layer l-1:
// text-to-vision attention rows (softmax of the chosen queries only, mean over heads, then over queries) or that
// layer's input and post-attention RMSNorm output at the visual tokens. The decoder (models/llama.ts) captures exactly
// that, asks the reducer which visual tokens to keep, gathers hidden states, original position ids (RoPE) and mask,
// and runs the deeper layers (and fills their KV caches) with the kept tokens only. The reduction is a value passed
// into the forward (`lm.forward({..., reduction})`), never a patch on a class.
// Here: the interface, the stable top-k ranking, and the adapters of keep schedules (G-Search / P-Sigmoid) and TopV
// (FastV: reduce/fastv.ts).
import type { tf } from "../core/backend.js";
import { ConfigError } from "../core/errors.js";
import { maxFloorRate, pSigmoidSchedule, solveL0 } from "./psigmoid.js";
import { FULL_LAYERS, validateSchedule, type FlopsDims, type KeepSchedule } from "./schedule.js";
import { resolveTopvOptions, topvKeepBatch, type TopvGrid, type TopvOptions } from "./topv.js";

/** Which query rows of layer l-1's attention a decision reads. */
export type AttentionQueries =
  /** The last prompt token's row (FastV). */
  | "last"
  /** The real tokens after each row's last visual token, averaged (G-Search / P-Sigmoid). */
  | "textAfterImage";

export interface DecisionPoint {
  /** The decision is taken entering this layer (1..L-1): this layer and deeper ones see only the kept tokens. */
  layer: number;
  /** Text-to-vision attention of layer `layer - 1` at the alive visual tokens (`DecisionInput.scores`). */
  attention?: AttentionQueries;
  /** Layer `layer - 1`'s input and post-attention RMSNorm output at the alive visual tokens (`sources`, `targets`). */
  hiddenIO?: boolean;
}

/** What the decoder hands a reducer at a decision point. Tensors belong to the decoder (do not dispose them). */
export interface DecisionInput {
  layer: number;
  /** N: visual tokens per row before any reduction. */
  visualTokens: number;
  /** [b] original visual indices (0..N-1, into the row's visualPositions) entering this layer, ascending. */
  alive: number[][];
  /** [b][i] attention alive[b][i] receives in layer-1 (mean over heads and the asked queries); when asked. */
  scores?: Float32Array[];
  /** [B, n, C] layer-1 input hidden states at the alive visual tokens; with hiddenIO. */
  sources?: tf.Tensor3D;
  /** [B, n, C] layer-1 post-attention RMSNorm output (the MLP input) at the alive visual tokens; with hiddenIO. */
  targets?: tf.Tensor3D;
}

export interface InLlmReducer {
  name: string;
  /** Resolved params, for reports. */
  params?: Readonly<Record<string, unknown>>;
  /**
   * The decision points (ascending layers) for an LLM of `layers` layers and `visualTokens` visual tokens per row.
   * @throws ConfigError when the reducer does not fit the model (layer out of range, budget above N, ...).
   */
  decisions(layers: number, visualTokens: number): DecisionPoint[];
  /** Per row, the original visual indices to keep: a subset of `alive`, the same count in every row (any order). */
  decide(d: DecisionInput): number[][];
}

/** The value `lm.forward` takes: the reducer and where the visual tokens are in the prefill sequence. */
export interface InLlmReduction {
  reducer: InLlmReducer;
  /** [b][N] positions of the visual tokens in the padded prefill sequence, ascending (the splice's visualPositions). */
  visualPositions: number[][];
}

/** What a reduced forward did (returned as ForwardOutput.reduction). */
export interface ReductionTrace {
  /** Visual tokens per row entering each layer l = 0..L-1 (its KV cache holds text + this many visual keys). */
  visualPerLayer: number[];
  /** Each decision: the layer, the kept original visual indices per row (ascending), the scores it saw. */
  decisions: { layer: number; kept: number[][]; scores?: Float32Array[] }[];
  /** [b] the prefill positions the last layer's output (and so the returned logits) holds, ascending. */
  keptPositions: number[][];
}

/**
 * Indices (into `scores`) of the `k` largest scores, stable (descending score, ascending index on ties), returned
 * ascending. NaN scores rank last.
 */
export function topKSorted(scores: ArrayLike<number>, k: number): number[] {
  const n = scores.length;
  if (!Number.isInteger(k) || k < 0 || k > n) throw new RangeError(`topKSorted: k = ${k} is not in 0..${n}`);
  const key = (i: number) => (Number.isNaN(scores[i]!) ? -Infinity : scores[i]!);
  const order = Array.from({ length: n }, (_, i) => i).sort((a, b) => key(b) - key(a) || a - b);
  return order.slice(0, k).sort((a, b) => a - b);
}

/** Per row, the alive visual indices with the `k` highest scores (`d.scores` must be present). */
export function keepTopScored(d: DecisionInput, k: number, who: string): number[][] {
  if (!d.scores) throw new Error(`${who}: layer ${d.layer}: the decoder gave no attention scores`);
  return d.alive.map((alive, b) => {
    const s = d.scores![b]!;
    if (s.length !== alive.length) throw new Error(`${who}: layer ${d.layer}, row ${b}: ${s.length} scores for ${alive.length} alive visual tokens`);
    return topKSorted(s, Math.min(k, alive.length)).map((i) => alive[i]!);
  });
}

// ---- keep schedules (G-Search / P-Sigmoid) ------------------------------------------------------------------------

/**
 * A keep schedule (reduce/schedule.ts) as an in-LLM reducer: at each layer l >= 2 with keep[l] < keep[l-1], rank the
 * surviving visual tokens by layer l-1's text-to-vision attention (mean over heads and over the text queries after
 * the image) and keep the top keep[l]. Layers 0 and 1 are never reduced.
 */
export function scheduleReducer(schedule: KeepSchedule, name = "schedule"): InLlmReducer {
  const s = validateSchedule(schedule);
  return {
    name,
    params: { keep: s.keep },
    decisions(layers, visualTokens) {
      if (s.numLayers !== layers || s.numVisual !== visualTokens) {
        throw new ConfigError([`${name}: the schedule is for ${s.numLayers} layers x ${s.numVisual} visual tokens, the model runs ${layers} x ${visualTokens}`]);
      }
      const points: DecisionPoint[] = [];
      for (let l = FULL_LAYERS; l < layers; l++) if (s.keep[l]! < s.keep[l - 1]!) points.push({ layer: l, attention: "textAfterImage" });
      return points;
    },
    decide: (d) => keepTopScored(d, s.keep[d.layer]!, name),
  };
}

/** Text tokens a P-Sigmoid schedule of the eval grid is solved for (LLaVA VQA prompts are ~40-60 tokens) [I]. */
export const PSIGMOID_TEXT_TOKENS = 40;

/**
 * P-Sigmoid at `budget` FLOPs-equivalent tokens without a BO fit (the eval grid's `psigmoid@B`): shape (k, r_min)
 * given or the default k = 1, r_min = half the largest feasible floor [I], l0 solved for the budget (psigmoid.ts).
 * A BO-fitted schedule (pSigmoidSearch's output file) runs as a schedule file instead.
 */
export function pSigmoidReducer(budget: number, dims: FlopsDims, shape: { k?: number; rMin?: number } = {}): InLlmReducer {
  const k = shape.k ?? 1;
  const rMin = shape.rMin ?? Math.min(0.5, 0.5 * maxFloorRate(budget, dims));
  const l0 = solveL0(k, rMin, budget, dims);
  const r = scheduleReducer(pSigmoidSchedule(k, rMin, l0, dims.numLayers, dims.numVisual), "psigmoid");
  return { ...r, params: { budget, k, rMin, l0, ...r.params } };
}

// ---- TopV ---------------------------------------------------------------------------------------------------------

export interface TopvReducerOptions extends Partial<TopvOptions> {
  /** Li: the layer whose input (sources) and post-attention RMSNorm output (targets) are compared; default 2. */
  layer?: number;
  /** Visual tokens kept from layer Li + 1 on. */
  budget: number;
  /** Raster layout of the visual tokens (default: a square grid of N). */
  grid?: TopvGrid;
}

/**
 * TopV (reduce/topv.ts) as an in-LLM reducer: layer Li runs on every token while the decoder captures its input and
 * post-attention RMSNorm output at the visual tokens; entering layer Li + 1 the top `budget` (with uniform recovery)
 * are kept, once.
 */
export function topvReducer(opts: TopvReducerOptions): InLlmReducer {
  const { layer = 2, budget, grid, ...topv } = opts;
  resolveTopvOptions(topv); // throws a ConfigError naming a bad key now, not mid-forward
  if (!Number.isInteger(layer) || layer < 0) throw new ConfigError([`topv.layer: must be an integer >= 0, got ${String(layer)}`]);
  if (!Number.isInteger(budget) || budget < 0) throw new ConfigError([`topv.budget: must be a non-negative integer, got ${String(budget)}`]);
  const gridFor = (N: number): TopvGrid => {
    if (grid) return grid;
    const side = Math.round(Math.sqrt(N));
    if (side * side !== N) throw new ConfigError([`topv.grid: ${N} visual tokens are not a square grid; give grid {rows, cols}`]);
    return { rows: side, cols: side };
  };
  return {
    name: "topv",
    params: { layer, budget, ...topv },
    decisions(layers, visualTokens) {
      if (layer >= layers - 1) throw new ConfigError([`topv.layer: Li = ${layer} must be below the LLM's last layer (${layers - 1}): pruning starts at Li + 1`]);
      if (budget > visualTokens) throw new ConfigError([`topv.budget: ${budget} exceeds the ${visualTokens} visual tokens`]);
      const g = gridFor(visualTokens);
      if (g.rows * g.cols !== visualTokens) throw new ConfigError([`topv.grid: ${g.rows} x ${g.cols} != ${visualTokens} visual tokens`]);
      return [{ layer: layer + 1, hiddenIO: true }];
    },
    decide(d) {
      if (!d.sources || !d.targets) throw new Error(`topv: layer ${d.layer}: the decoder gave no sources / targets`);
      const picks = topvKeepBatch(d.sources, d.targets, gridFor(d.visualTokens), budget, topv); // indices into alive
      return picks.map((p, b) => p.map((i) => d.alive[b]![i]!));
    },
  };
}
