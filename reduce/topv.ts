// TopV (Yang et al., CVPR 2025, arXiv 2503.18278): pick the visual tokens to keep at decoder layer Li during prefill
// from an optimal-transport plan between the layer's input visual tokens (sources) and the same tokens after the
// layer's post-attention RMSNorm (targets). Pure tensor functions; the decoder hook (reduce/in_llm.ts) calls them.
// Spec: ../shared/reference/reduction_methods.md §1.2 and §1.6. The paper has no code and its method section was not
// available, so the exact forms below are OUR READING ([I] in the spec), each kept selectable where the spec asks:
//
//   [I] feature cost   Cf[i,j] = ‖x̂_i − ŷ_j‖² = 2 − 2·cos(x_i, y_j), rows L2-normalised (the residual-stream norm
//                      of X must not dominate), clipped at 0, then min-max scaled to [0, 1] per image.
//   [I] spatial cost   Cs[i,j] = 1 − exp(−‖p_i − p_j‖² / 2σ²), p = (row, col) on the raster grid, min-max to [0, 1].
//   [I] centre term    ce_i = ‖p_i − c‖ / max_k ‖p_k − c‖, c = ((rows−1)/2, (cols−1)/2) (the true centre).
//                      central "marginal" (default): source marginal a_i ∝ exp(−γ·ce_i), cost C = αCf + βCs.
//                      central "cost": the paper's literal C = αCf + βCs + γ·ce_i with uniform a. A row-only term is
//                      absorbed by the Sinkhorn scaling u, so in this mode γ has NO effect on the plan (kept only to
//                      document / test that pitfall).
//   [I] Sinkhorn       log domain, log K = −C/ε, log v = 0, `iterations` × (row step, then column step), b = 1/N.
//                      ε = 0.05 on [0,1]-scaled costs; 3 iterations (paper, via summary).
//   [I] importance     readout "rowSum" (default): s_i = Σ_j P[i,j] read AFTER the last column step (columns exact,
//                      rows free). Reading after a row step would give s = a, i.e. a constant / prior-only ranking
//                      (the defect of the unofficial code). "diagonal": s_i = P[i,i]. "costWeighted":
//                      s_i = Σ_j P[i,j]·(1 − C[i,j]/max C).
//   [I] selection      recovery "budget" (default): nRec = ⌊ρ·K⌋; top K − nRec by s (ties: lower index first); from
//                      the other tokens in raster order (R of them) take positions ⌊(m + ½)·R/nRec⌋, m < nRec, i.e.
//                      the centre of each of nRec equal bins. The spec writes round(); floor of the bin centre is our
//                      reading of it: it keeps the picks distinct and < R (round-half-up gives R when K = N).
//                      Total = K exactly. recovery "additive" reproduces the unofficial code: top K, plus every 4th
//                      pruned token in raster order (pruned[0], pruned[4], ...), so MORE than K are returned.
//   Defaults (TOPV_DEFAULTS): α = 1, β = 1 (unofficial code), γ = 0.1, σ = 10 patches, ε = 0.05, 3 iterations,
//   ρ = 0.1. All to be calibrated on real activations.
//
// Everything runs batched as [B, N, N] tensor ops; only the N scores per image are read back and sorted in JS.
import { tf } from "../core/backend.js";
import { ConfigError } from "../core/errors.js";

export interface TopvGrid {
  rows: number; // patch rows (24 for LLaVA-1.5)
  cols: number; // patch columns; visual token t sits at (⌊t/cols⌋, t mod cols)
}

export type TopvCentral = "marginal" | "cost";
export type TopvReadout = "rowSum" | "diagonal" | "costWeighted";
export type TopvRecovery = "budget" | "additive";

export interface TopvOptions {
  alpha: number; // weight of the feature cost
  beta: number; // weight of the relative spatial (Gaussian) cost
  gamma: number; // weight of the absolute central prior
  sigma: number; // Gaussian bandwidth of the spatial cost, in patches
  epsilon: number; // entropic regularisation on [0,1]-scaled costs
  iterations: number; // Sinkhorn iterations (row step + column step each)
  recoverRatio: number; // ρ: share of the budget given to uniformly recovered pruned tokens, in [0, 1]
  central: TopvCentral; // where γ enters: source-marginal prior (default) or the literal additive cost
  readout: TopvReadout; // how importance is read from the plan
  recovery: TopvRecovery; // "budget": exactly K kept; "additive": unofficial code's top-K + every 4th pruned
}

export const TOPV_DEFAULTS: Readonly<TopvOptions> = Object.freeze({
  alpha: 1,
  beta: 1,
  gamma: 0.1,
  sigma: 10,
  epsilon: 0.05,
  iterations: 3,
  recoverRatio: 0.1,
  central: "marginal",
  readout: "rowSum",
  recovery: "budget",
});

const CHOICES = {
  central: ["marginal", "cost"],
  readout: ["rowSum", "diagonal", "costWeighted"],
  recovery: ["budget", "additive"],
} as const;

/** Fills in TOPV_DEFAULTS and checks every value; a ConfigError lists each bad or unknown key as `topv.<key>`. */
export function resolveTopvOptions(opts: Partial<TopvOptions> = {}): TopvOptions {
  const o = { ...TOPV_DEFAULTS, ...opts } as TopvOptions;
  const problems: string[] = [];
  for (const k of Object.keys(opts)) {
    if (!(k in TOPV_DEFAULTS)) problems.push(`topv.${k}: unknown option; valid: ${Object.keys(TOPV_DEFAULTS).join(", ")}`);
  }
  const num = (k: keyof TopvOptions, ok: (v: number) => boolean, what: string) => {
    const v = o[k];
    if (typeof v !== "number" || !Number.isFinite(v) || !ok(v)) problems.push(`topv.${k}: must be ${what}, got ${String(v)}`);
  };
  num("alpha", (v) => v >= 0, "a number >= 0");
  num("beta", (v) => v >= 0, "a number >= 0");
  num("gamma", (v) => v >= 0, "a number >= 0");
  num("sigma", (v) => v > 0, "a number > 0");
  num("epsilon", (v) => v > 0, "a number > 0");
  num("iterations", (v) => Number.isInteger(v) && v >= 1, "an integer >= 1");
  num("recoverRatio", (v) => v >= 0 && v <= 1, "a number in [0, 1]");
  for (const k of ["central", "readout", "recovery"] as const) {
    const valid = CHOICES[k] as readonly string[];
    if (!valid.includes(o[k])) problems.push(`topv.${k}: must be one of ${valid.join(", ")}, got ${String(o[k])}`);
  }
  if (problems.length) throw new ConfigError(problems);
  return o;
}

// ---------------------------------------------------------------------------------------------------------------
// Sinkhorn

export interface SinkhornOptions {
  iterations: number;
  epsilon: number;
  a?: tf.Tensor1D | ArrayLike<number>; // source marginal [N] (default uniform 1/N)
  b?: tf.Tensor1D | ArrayLike<number>; // target marginal [M] (default uniform 1/M)
}

export interface SinkhornResult {
  logPlan: tf.Tensor2D; // [N, M] log P = log u + log K + log v, after the last column step
  logU: tf.Tensor1D; // [N]
  logV: tf.Tensor1D; // [M]
}

/** log-domain Sinkhorn scalings for a batch: logK [B, N, M], logA [B|1, N], logB [B|1, M] -> logU [B, N], logV [B, M]. */
function sinkhornScalings(logK: tf.Tensor3D, logA: tf.Tensor2D, logB: tf.Tensor2D, iterations: number) {
  const [B, , M] = logK.shape;
  let logV: tf.Tensor2D = tf.zeros([B, M]);
  let logU: tf.Tensor2D = tf.zeros([B, logK.shape[1]]);
  for (let t = 0; t < iterations; t++) {
    logU = tf.sub(logA, tf.logSumExp(tf.add(logK, tf.expandDims(logV, 1)), 2)); // row step: Σ_j P[i,j] = a_i
    logV = tf.sub(logB, tf.logSumExp(tf.add(logK, tf.expandDims(logU, 2)), 1)); // column step: Σ_i P[i,j] = b_j
  }
  return { logU, logV };
}

function logMarginal(m: tf.Tensor1D | ArrayLike<number> | undefined, n: number, what: string): tf.Tensor2D {
  if (m === undefined) return tf.fill([1, n], -Math.log(n)) as tf.Tensor2D;
  const t = m instanceof tf.Tensor ? tf.cast(m, "float32") : tf.tensor1d(Float32Array.from(m));
  if (t.size !== n) throw new Error(`sinkhornLog: marginal ${what} has ${t.size} entries, cost needs ${n}`);
  return tf.log(t).reshape([1, n]);
}

/**
 * Entropic OT between a (rows) and b (columns) for `cost` [N, M], in the log domain: log K = −cost/ε, log v = 0,
 * then `iterations` × (row step, column step). The returned plan's columns sum to b exactly; rows approach a.
 * Returns new tensors (caller disposes); inputs are not disposed.
 */
export function sinkhornLog(cost: tf.Tensor2D, opts: SinkhornOptions): SinkhornResult {
  if (cost.rank !== 2) throw new Error(`sinkhornLog: cost must be [N, M], got [${cost.shape.join(", ")}]`);
  if (!(opts.epsilon > 0)) throw new ConfigError([`sinkhorn.epsilon: must be > 0, got ${opts.epsilon}`]);
  if (!Number.isInteger(opts.iterations) || opts.iterations < 1) {
    throw new ConfigError([`sinkhorn.iterations: must be an integer >= 1, got ${opts.iterations}`]);
  }
  const [N, M] = cost.shape;
  return tf.tidy(() => {
    const logK = tf.div(tf.cast(cost, "float32"), -opts.epsilon).expandDims(0) as tf.Tensor3D; // [1, N, M]
    const { logU, logV } = sinkhornScalings(logK, logMarginal(opts.a, N, "a"), logMarginal(opts.b, M, "b"), opts.iterations);
    const logPlan = tf.add(tf.add(logK, tf.expandDims(logU, 2)), tf.expandDims(logV, 1)).squeeze([0]) as tf.Tensor2D;
    return { logPlan, logU: logU.squeeze([0]) as tf.Tensor1D, logV: logV.squeeze([0]) as tf.Tensor1D };
  });
}

// ---------------------------------------------------------------------------------------------------------------
// Cost terms

/** Scales each [N, N] slice of x ([B, N, N]) to [0, 1]; a constant slice becomes 0. */
function minMax(x: tf.Tensor3D): tf.Tensor3D {
  const lo = tf.min(x, [1, 2], true);
  const range = tf.sub(tf.max(x, [1, 2], true), lo);
  return tf.div(tf.sub(x, lo), tf.where(tf.greater(range, 0), range, tf.onesLike(range)));
}

/** Patch coordinates [N] rows and cols of a raster grid. */
function gridCoords(grid: TopvGrid): { r: tf.Tensor1D; c: tf.Tensor1D } {
  const N = grid.rows * grid.cols;
  const r = new Float32Array(N);
  const c = new Float32Array(N);
  for (let t = 0; t < N; t++) {
    r[t] = Math.floor(t / grid.cols);
    c[t] = t % grid.cols;
  }
  return { r: tf.tensor1d(r), c: tf.tensor1d(c) };
}

/** Relative spatial cost Cs [1, N, N] in [0, 1] and centre distance ce [N] in [0, 1]. */
function spatialTerms(grid: TopvGrid, sigma: number): { cs: tf.Tensor3D; ce: tf.Tensor1D } {
  const { r, c } = gridCoords(grid);
  const dr = tf.sub(r.expandDims(1), r.expandDims(0)); // [N, N]
  const dc = tf.sub(c.expandDims(1), c.expandDims(0));
  const d2 = tf.add(tf.square(dr), tf.square(dc));
  const cs = minMax(tf.sub(1, tf.exp(tf.div(d2, -2 * sigma * sigma))).expandDims(0) as tf.Tensor3D);
  const dist = tf.sqrt(tf.add(tf.square(tf.sub(r, (grid.rows - 1) / 2)), tf.square(tf.sub(c, (grid.cols - 1) / 2)))); // [N]
  const far = tf.max(dist);
  const ce = tf.div(dist, tf.where(tf.greater(far, 0), far, tf.onesLike(far))) as tf.Tensor1D;
  return { cs, ce };
}

/** Feature cost Cf [B, N, N] in [0, 1]: 2 − 2·cos between source rows and target rows, min-max scaled per image. */
function featureCost(x: tf.Tensor3D, y: tf.Tensor3D): tf.Tensor3D {
  const unit = (t: tf.Tensor3D) => tf.div(t, tf.maximum(tf.norm(t, "euclidean", 2, true), 1e-12));
  const cos = tf.matMul(unit(x), unit(y), false, true); // [B, N, N]
  return minMax(tf.relu(tf.sub(2, tf.mul(2, cos))) as tf.Tensor3D);
}

// ---------------------------------------------------------------------------------------------------------------
// Importance

function checkInputs(sources: tf.Tensor, targets: tf.Tensor, grid: TopvGrid, rank: 2 | 3, fn: string): void {
  const want = rank === 2 ? "[N, D]" : "[B, N, D]";
  if (sources.rank !== rank) throw new Error(`${fn}: sources must be ${want}, got [${sources.shape.join(", ")}]`);
  if (targets.rank !== rank || targets.shape.some((d, i) => d !== sources.shape[i])) {
    throw new Error(`${fn}: targets must have the shape of sources [${sources.shape.join(", ")}], got [${targets.shape.join(", ")}]`);
  }
  const N = sources.shape[rank - 2]!;
  const { rows, cols } = grid;
  if (!Number.isInteger(rows) || !Number.isInteger(cols) || rows < 1 || cols < 1 || rows * cols !== N) {
    throw new ConfigError([`topv.grid: rows x cols must equal the ${N} visual tokens, got ${rows} x ${cols}`]);
  }
}

/** Scores [B, N] and, when asked, the plan [B, N, N], inside one tidy. */
function scoreBatch(x: tf.Tensor3D, y: tf.Tensor3D, grid: TopvGrid, o: TopvOptions, withPlan: boolean) {
  return tf.tidy(() => {
    const N = x.shape[1];
    const { cs, ce } = spatialTerms(grid, o.sigma);
    let cost = tf.add(tf.mul(o.alpha, featureCost(tf.cast(x, "float32") as tf.Tensor3D, tf.cast(y, "float32") as tf.Tensor3D)), tf.mul(o.beta, cs));
    let logA: tf.Tensor2D;
    if (o.central === "cost") {
      cost = tf.add(cost, tf.mul(o.gamma, ce).reshape([1, N, 1])); // row-only: absorbed by u (see header)
      logA = tf.fill([1, N], -Math.log(N)) as tf.Tensor2D;
    } else {
      const prior = tf.mul(-o.gamma, ce); // a_i ∝ exp(−γ·ce_i)
      logA = tf.sub(prior, tf.logSumExp(prior)).reshape([1, N]);
    }
    const logB = tf.fill([1, N], -Math.log(N)) as tf.Tensor2D;
    const logK = tf.div(cost, -o.epsilon) as tf.Tensor3D; // [B, N, N]
    const { logU, logV } = sinkhornScalings(logK, logA, logB, o.iterations);
    const logPlan = tf.add(tf.add(logK, tf.expandDims(logU, 2)), tf.expandDims(logV, 1)); // [B, N, N]
    let scores: tf.Tensor2D;
    if (o.readout === "rowSum") {
      scores = tf.exp(tf.logSumExp(logPlan, 2)); // Σ_j P[i,j], after the column step
    } else if (o.readout === "diagonal") {
      scores = tf.sum(tf.mul(tf.exp(logPlan), tf.eye(N).expandDims(0)), 2); // P[i,i]
    } else {
      const maxC = tf.max(cost, [1, 2], true);
      const w = tf.sub(1, tf.div(cost, tf.where(tf.greater(maxC, 0), maxC, tf.onesLike(maxC))));
      scores = tf.sum(tf.mul(tf.exp(logPlan), w), 2); // Σ_j P[i,j]·(1 − C[i,j]/max C)
    }
    return withPlan ? { scores, plan: tf.exp(logPlan) as tf.Tensor3D } : { scores };
  });
}

export interface TopvImportance {
  importance: Float32Array; // [N] one score per visual token (raster order); higher = keep
  plan?: tf.Tensor2D; // [N, N] the transport plan P[source i, target j], only with `returnPlan` (caller disposes)
}

/**
 * TopV importance of N visual tokens: sources [N, D] = layer Li's input at the visual positions, targets [N, D] =
 * the same tokens after Li's post-attention RMSNorm; grid = their raster layout. Inputs are not disposed.
 */
export function topvImportance(
  sources: tf.Tensor2D,
  targets: tf.Tensor2D,
  grid: TopvGrid,
  opts: Partial<TopvOptions> & { returnPlan?: boolean } = {},
): TopvImportance {
  checkInputs(sources, targets, grid, 2, "topvImportance");
  const { returnPlan, ...rest } = opts;
  const o = resolveTopvOptions(rest);
  const x = tf.expandDims(sources, 0) as tf.Tensor3D;
  const y = tf.expandDims(targets, 0) as tf.Tensor3D;
  const r = scoreBatch(x, y, grid, o, returnPlan === true);
  tf.dispose([x, y]);
  const importance = r.scores.dataSync() as Float32Array;
  r.scores.dispose();
  if (!r.plan) return { importance };
  const plan = r.plan.squeeze([0]) as tf.Tensor2D;
  r.plan.dispose();
  return { importance, plan };
}

/** topvImportance for B images at once: sources / targets [B, N, D] -> B arrays of N scores. */
export function topvImportanceBatch(
  sources: tf.Tensor3D,
  targets: tf.Tensor3D,
  grid: TopvGrid,
  opts: Partial<TopvOptions> = {},
): Float32Array[] {
  checkInputs(sources, targets, grid, 3, "topvImportanceBatch");
  const o = resolveTopvOptions(opts);
  const [B, N] = sources.shape;
  const { scores } = scoreBatch(sources, targets, grid, o, false);
  const all = scores.dataSync() as Float32Array;
  scores.dispose();
  return Array.from({ length: B }, (_, b) => all.slice(b * N, (b + 1) * N));
}

// ---------------------------------------------------------------------------------------------------------------
// Selection

function checkKeep(keep: number, N: number): void {
  if (!Number.isInteger(keep) || keep < 0 || keep > N) {
    throw new ConfigError([`topv.budget: must be an integer in [0, ${N}] (the visual tokens), got ${keep}`]);
  }
}

export interface TopvSelection {
  kept: number[]; // ascending visual-token indices to keep
  top: number[]; // the ones chosen by importance, in rank order (best first)
  recovered: number[]; // the uniformly recovered pruned ones, ascending
}

/**
 * Budget rule on N scores (pure JS, no tensors): see the file header. "budget": exactly `keep` indices;
 * "additive": top `keep` plus every 4th pruned token. Ties rank the lower index first.
 */
export function selectWithRecovery(
  importance: ArrayLike<number>,
  keep: number,
  opts: Partial<Pick<TopvOptions, "recoverRatio" | "recovery">> = {},
): TopvSelection {
  const N = importance.length;
  checkKeep(keep, N);
  const o = resolveTopvOptions(opts);
  const bad = Array.prototype.findIndex.call(importance, (v: number) => !Number.isFinite(v));
  if (bad >= 0) throw new Error(`topv: importance[${bad}] is ${importance[bad]} (not finite)`);
  const order = Array.from({ length: N }, (_, i) => i).sort((i, j) => importance[j]! - importance[i]! || i - j);
  const nRec = o.recovery === "budget" ? Math.floor(o.recoverRatio * keep) : 0;
  const top = order.slice(0, keep - nRec);
  const chosen = new Uint8Array(N);
  for (const i of top) chosen[i] = 1;
  const rest: number[] = [];
  for (let i = 0; i < N; i++) if (!chosen[i]) rest.push(i); // raster order
  let recovered: number[];
  if (o.recovery === "budget") {
    const R = rest.length;
    recovered = Array.from({ length: nRec }, (_, m) => rest[Math.floor(((m + 0.5) * R) / nRec)]!);
  } else {
    recovered = rest.filter((_, k) => k % 4 === 0);
  }
  const kept = [...top, ...recovered].sort((a, b) => a - b);
  return { kept, top, recovered };
}

export interface TopvDecision extends TopvSelection {
  importance: Float32Array; // [N]
}

/** Importance + selection in one call (what the decoder hook records as its last decision). */
export function topvSelect(
  sources: tf.Tensor2D,
  targets: tf.Tensor2D,
  grid: TopvGrid,
  keep: number,
  opts: Partial<TopvOptions> = {},
): TopvDecision {
  checkKeep(keep, sources.shape[0]);
  const { importance } = topvImportance(sources, targets, grid, opts);
  return { importance, ...selectWithRecovery(importance, keep, opts) };
}

/** Sorted indices of the visual tokens to keep (exactly `keep` with the default budget recovery). */
export function topvKeep(
  sources: tf.Tensor2D,
  targets: tf.Tensor2D,
  grid: TopvGrid,
  keep: number,
  opts: Partial<TopvOptions> = {},
): number[] {
  return topvSelect(sources, targets, grid, keep, opts).kept;
}

/** topvKeep for B images: sources / targets [B, N, D] -> B sorted index lists. */
export function topvKeepBatch(
  sources: tf.Tensor3D,
  targets: tf.Tensor3D,
  grid: TopvGrid,
  keep: number,
  opts: Partial<TopvOptions> = {},
): number[][] {
  checkKeep(keep, sources.shape[1]);
  return topvImportanceBatch(sources, targets, grid, opts).map((s) => selectWithRecovery(s, keep, opts).kept);
}
