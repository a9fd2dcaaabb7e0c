// P-Sigmoid (arXiv 2412.00556, Scenario II): a parametric sigmoid keep-rate curve over the LLM layers, fitted to a
// FLOPs budget, with its shape chosen by Bayesian optimisation on a search split. The paper states a parametric
// sigmoid guided by G-Search's S-shaped curve and BO; the formula, budget definition and search set-up are our
// reading [I] (reference/reduction_methods.md §2.3):
//   r(l) = r_min + (1 - r_min) / (1 + exp(k (l - l0))),  r(0) = r(1) = 1 forced,  keep[l] = round(N · r(l))
//   made non-increasing (clamped to the previous layer; r is decreasing for k > 0 so this only guards rounding).
// - budget B ("equivalent retained tokens"): Σ_l F(text + keep[l]) <= L · F(text + B), FastV's per-layer FLOPs
//   (reduce/schedule.ts). For given (k, r_min), solveL0 bisects l0 for the largest l0 whose rounded schedule stays
//   within the budget; the FLOPs are a non-decreasing step function of l0 whose steps are one token at one layer, so
//   the result lands within one equivalent token below B. [I]
// - l0 is solved on the whole real line, not limited to [1, L-1]: a small budget with a gentle slope needs the
//   midpoint before layer 2. Any k > 0 and r_min below the floor that alone spends the budget (maxFloorRate) then has
//   a solution. [I]
// - BO searches (k, r_min) only (default box k ∈ [0.1, 4], r_min ∈ [0, 0.5]); the r_min upper bound is capped at
//   0.9 · maxFloorRate(B) so every point of the box is feasible; 5 random + 25 guided trials, seeded
//   (reduce/bayes_opt.ts). [I]
import { ConfigError } from "../core/errors.js";
import { bayesOpt, type Trial } from "./bayes_opt.js";
import { FULL_LAYERS, flopsEquivalentTokens, scheduleFlops, tokensForFlops, uniformFlops, validateSchedule, writeSchedule, type FlopsDims, type KeepSchedule } from "./schedule.js";
import { progressSink, SearchState, type ProgressSink, type ScheduleEvaluator } from "./search_state.js";

export interface PSigmoidBounds {
  /** Steepness k > 0. */
  k: [number, number];
  /** Floor rate r_min in [0, 1). */
  rMin: [number, number];
}

export const DEFAULT_PSIGMOID_BOUNDS: Readonly<PSigmoidBounds> = Object.freeze({ k: [0.1, 4] as [number, number], rMin: [0, 0.5] as [number, number] });

/** The r_min cap is this fraction of maxFloorRate(B), so that l0 stays finite and moderate. */
export const FLOOR_MARGIN = 0.9;

/** r(l) for l >= 2 (layers 0 and 1 are 1). */
export function pSigmoidRate(l: number, k: number, rMin: number, l0: number): number {
  if (l < FULL_LAYERS) return 1;
  return rMin + (1 - rMin) / (1 + Math.exp(k * (l - l0)));
}

/** The schedule keep[l] = round(numVisual · r(l)), layers 0-1 full, non-increasing. */
export function pSigmoidSchedule(k: number, rMin: number, l0: number, numLayers: number, numVisual: number): KeepSchedule {
  const keep: number[] = [];
  for (let l = 0; l < numLayers; l++) {
    const want = l < FULL_LAYERS ? numVisual : Math.round(numVisual * pSigmoidRate(l, k, rMin, l0));
    keep.push(Math.max(0, Math.min(want, keep[l - 1] ?? numVisual)));
  }
  return { numLayers, numVisual, keep };
}

/**
 * The floor rate whose schedule (layers 0-1 full, every later layer at r_min · N) spends exactly the budget of B
 * uniform tokens; r_min must stay below it. Throws a ConfigError naming `budget` when even dropping every visual
 * token after layer 1 does not fit.
 */
export function maxFloorRate(budget: number, dims: FlopsDims): number {
  const { numLayers: L, numVisual: N } = dims;
  const rest = uniformFlops(budget, dims) - FULL_LAYERS * uniformFlops(N, { ...dims, numLayers: 1 });
  const x = tokensForFlops(rest, L - FULL_LAYERS, dims);
  if (!(x > 0)) {
    throw new ConfigError([`budget: ${budget} equivalent tokens cannot be met: layers 0-1 at ${N} tokens already spend more than the budget allows with no visual token after them (smallest budget: ${Math.ceil(flopsEquivalentTokens({ keep: [N, N, ...Array(L - FULL_LAYERS).fill(0)] }, dims))})`]);
  }
  return x / N;
}

/**
 * The largest l0 whose pSigmoidSchedule(k, rMin, l0) spends at most the FLOPs of `budget` uniform tokens (bisection;
 * the result is within one equivalent token below the budget). Throws a ConfigError when (k, rMin) cannot meet it.
 */
export function solveL0(k: number, rMin: number, budget: number, dims: FlopsDims): number {
  const { numLayers: L, numVisual: N } = dims;
  if (!(k > 0) || !Number.isFinite(k)) throw new ConfigError([`k: the sigmoid steepness must be a finite number > 0, got ${k}`]);
  if (!(rMin >= 0 && rMin < 1)) throw new ConfigError([`rMin: must be in [0, 1), got ${rMin}`]);
  if (!(budget > 0)) throw new ConfigError([`budget: must be > 0 equivalent tokens, got ${budget}`]);
  const target = uniformFlops(budget, dims);
  const flops = (l0: number) => scheduleFlops(pSigmoidSchedule(k, rMin, l0, L, N), dims);
  const LIMIT = 1e6;
  let lo = 1;
  let hi = L - 1;
  for (let w = L; flops(lo) > target; w *= 2) {
    if (lo <= -LIMIT) {
      throw new ConfigError([`budget: ${budget} equivalent tokens cannot be met with rMin = ${rMin}: the floor alone keeps ${Math.round(rMin * N)} tokens per layer; rMin must be below ${maxFloorRate(budget, dims).toFixed(4)}`]);
    }
    hi = lo;
    lo -= w;
  }
  for (let w = L; flops(hi) <= target; w *= 2) {
    if (hi >= LIMIT) return hi; // the budget allows keeping (almost) every token
    lo = hi;
    hi += w;
  }
  // flops(lo) <= target < flops(hi)
  for (let i = 0; i < 200 && hi - lo > 1e-12 * Math.max(1, Math.abs(lo)); i++) {
    const mid = (lo + hi) / 2;
    if (flops(mid) <= target) lo = mid;
    else hi = mid;
  }
  return lo;
}

export interface PSigmoidSearchOptions {
  /** Equivalent retained tokens (0 < B < numVisual). */
  budget: number;
  dims: FlopsDims;
  evaluate: ScheduleEvaluator;
  seed: number;
  randomTrials?: number;
  guidedTrials?: number;
  bounds?: PSigmoidBounds;
  /** JSON file of the resumable state (cached evaluations; BO is deterministic, so a rerun replays them). */
  statePath?: string;
  /** Write the best schedule here (JSON, reduce/schedule.ts writeSchedule). */
  outputPath?: string;
  /** true: a progress bar on stderr; or any sink (one step per trial). */
  progress?: boolean | ProgressSink;
}

export interface PSigmoidTrial {
  k: number;
  rMin: number;
  l0: number;
  accuracy: number;
  /** FLOPs-equivalent retained tokens of the trial's schedule. */
  tokens: number;
  phase: Trial["phase"];
}

export interface PSigmoidResult {
  /** The best trial's schedule (meta: method, budget, k, rMin, l0, accuracy, flopsEquivalentTokens, seed, bounds). */
  schedule: KeepSchedule;
  k: number;
  rMin: number;
  l0: number;
  accuracy: number;
  trials: PSigmoidTrial[];
}

/** The BO box actually searched: the given bounds with r_min capped at FLOOR_MARGIN · maxFloorRate(budget). */
export function effectiveBounds(budget: number, dims: FlopsDims, bounds: PSigmoidBounds = DEFAULT_PSIGMOID_BOUNDS): PSigmoidBounds {
  const [kLo, kHi] = bounds.k;
  const [rLo, rHi] = bounds.rMin;
  const problems: string[] = [];
  if (!(kLo > 0 && kLo <= kHi && Number.isFinite(kHi))) problems.push(`bounds.k: must be [lo, hi] with 0 < lo <= hi, got [${kLo}, ${kHi}]`);
  if (!(rLo >= 0 && rLo <= rHi && rHi < 1)) problems.push(`bounds.rMin: must be [lo, hi] with 0 <= lo <= hi < 1, got [${rLo}, ${rHi}]`);
  if (problems.length) throw new ConfigError(problems);
  const cap = FLOOR_MARGIN * maxFloorRate(budget, dims);
  if (rLo > cap) throw new ConfigError([`bounds.rMin: lower bound ${rLo} leaves no feasible floor for budget ${budget}: r_min must be below ${cap.toFixed(4)} (${FLOOR_MARGIN} x the floor that alone spends the budget)`]);
  return { k: [kLo, kHi], rMin: [rLo, Math.min(rHi, cap)] };
}

/** Fits P-Sigmoid to `budget` by Bayesian optimisation of (k, r_min) on the search split; resumable with statePath. */
export async function pSigmoidSearch(opts: PSigmoidSearchOptions): Promise<PSigmoidResult> {
  const { budget, dims, seed } = opts;
  const { numLayers: L, numVisual: N } = dims;
  if (!(budget > 0 && budget < N)) throw new ConfigError([`budget: must be between 0 and ${N} (the visual tokens) exclusive, got ${budget}`]);
  const bounds = effectiveBounds(budget, dims, opts.bounds);
  const randomTrials = opts.randomTrials ?? 5;
  const guidedTrials = opts.guidedTrials ?? 25;
  const settings = { budget, dims, seed, randomTrials, guidedTrials, bounds };
  const st = SearchState.open<Record<string, never>>(opts.statePath, "psigmoid", settings, {});
  const bar = progressSink(opts.progress, randomTrials + guidedTrials, `psigmoid@${budget}`);
  const trials: PSigmoidTrial[] = [];
  const build = (k: number, rMin: number) => {
    const l0 = solveL0(k, rMin, budget, dims);
    return { l0, schedule: pSigmoidSchedule(k, rMin, l0, L, N) };
  };

  const result = await bayesOpt(
    async ([k, rMin]) => {
      const { l0, schedule } = build(k!, rMin!);
      const { accuracy } = await st.evaluate(schedule, opts.evaluate);
      trials.push({ k: k!, rMin: rMin!, l0, accuracy, tokens: flopsEquivalentTokens(schedule, dims), phase: trials.length < randomTrials ? "random" : "guided" });
      return accuracy;
    },
    [bounds.k, bounds.rMin],
    { seed, initial: randomTrials, iterations: guidedTrials, onTrial: (t, i) => bar?.update(i + 1, `k ${t.x[0]!.toFixed(3)} rMin ${t.x[1]!.toFixed(3)} acc ${t.y.toFixed(4)}`) },
  );
  const [k, rMin] = result.best.x as [number, number];
  const { l0, schedule } = build(k, rMin);
  const accuracy = result.best.y;
  bar?.finish(`best k ${k.toFixed(3)} rMin ${rMin.toFixed(3)} l0 ${l0.toFixed(3)} acc ${accuracy.toFixed(4)}`);
  const out = validateSchedule({
    ...schedule,
    meta: { method: "psigmoid", budget, k, rMin, l0, accuracy, flopsEquivalentTokens: flopsEquivalentTokens(schedule, dims), textTokens: dims.textTokens, seed, bounds, trials: trials.length },
  });
  if (opts.outputPath) writeSchedule(opts.outputPath, out);
  return { schedule: out, k, rMin, l0, accuracy, trials };
}
