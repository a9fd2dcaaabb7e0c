// Bayesian optimisation in plain numbers (no tensors): a Gaussian process with a Matérn-5/2 kernel and Expected
// Improvement, seeded. Used by P-Sigmoid (reduce/psigmoid.ts) to pick (k, r_min); the paper says BO is used, the set-up
// below is ours [I] (reference/reduction_methods.md §2.3):
// - inputs are scaled to the unit box [0, 1]^d; outputs standardised (constant mean = sample mean, unit variance);
// - kernel σ²·Matérn52(r), r = sqrt(Σ_i ((x_i - x'_i) / ℓ_i)²), σ² = 1 on the standardised outputs;
// - length scales ℓ (per dimension when d <= 3, one shared scale otherwise) and the noise variance are picked by a small
//   grid search on the log marginal likelihood, refitted after every trial (or fixed by options);
// - Cholesky solves in Float64Array, with jitter raised tenfold (up to 1e-2) if the matrix is not positive definite;
// - EI for maximisation, EI = (μ - y* - ξ)Φ(z) + σφ(z), z = (μ - y* - ξ)/σ, ξ = 0.01 standard deviations of y;
// - EI maximised over `candidates` uniform random points, then pattern-search refinement (coordinate steps halving from
//   0.1 to 1e-4 of the box) from the 5 best candidates and the best observed point; if no point expects any
//   improvement, the candidate of largest posterior variance is taken instead;
// - `initial` uniform random trials first, then `iterations` guided ones; all draws from core/rng.ts createRng(seed).
import { createRng, type Rng } from "../core/rng.js";

/** [lo, hi] per dimension. */
export type Bounds = readonly (readonly [number, number])[];

export interface Trial {
  x: number[];
  y: number;
  phase: "random" | "guided";
}

export interface BayesOptOptions {
  seed: number;
  /** Uniform random trials before the GP guides (default 5). */
  initial?: number;
  /** Guided (EI) trials after them (default 25). */
  iterations?: number;
  /** Fixed length scales in unit-box coordinates (one per dimension); default: fitted by grid on the marginal likelihood. */
  lengthScales?: number[];
  /** Fixed noise variance of the standardised outputs; default: fitted by grid. */
  noise?: number;
  /** EI exploration margin ξ in standard deviations of y (default 0.01). */
  xi?: number;
  /** Random candidates per EI maximisation (default 2000). */
  candidates?: number;
  /** Called after every trial. */
  onTrial?: (trial: Trial, index: number) => void;
}

export interface BayesOptResult {
  /** The trial with the largest y (first one on ties). */
  best: Trial;
  trials: Trial[];
}

export const LENGTH_SCALE_GRID: readonly number[] = [0.05, 0.1, 0.2, 0.35, 0.5, 0.75, 1, 1.5, 2];
export const NOISE_GRID: readonly number[] = [1e-6, 1e-4, 1e-2, 1e-1];

const SQRT5 = Math.sqrt(5);

/** Matérn-5/2 correlation at scaled distance r >= 0: (1 + √5 r + 5r²/3) · exp(-√5 r). */
export function matern52(r: number): number {
  return (1 + SQRT5 * r + (5 * r * r) / 3) * Math.exp(-SQRT5 * r);
}

function scaledDistance(a: ArrayLike<number>, b: ArrayLike<number>, ls: readonly number[]): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) {
    const t = (a[i]! - b[i]!) / ls[i]!;
    s += t * t;
  }
  return Math.sqrt(s);
}

/** Lower Cholesky factor of the n x n row-major SPD matrix `a` (a = L Lᵀ); null if not positive definite. */
export function cholesky(a: Float64Array, n: number): Float64Array | null {
  const l = new Float64Array(n * n);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j <= i; j++) {
      let s = a[i * n + j]!;
      for (let k = 0; k < j; k++) s -= l[i * n + k]! * l[j * n + k]!;
      if (i === j) {
        if (!(s > 0)) return null;
        l[i * n + i] = Math.sqrt(s);
      } else l[i * n + j] = s / l[j * n + j]!;
    }
  }
  return l;
}

/** Solves L z = b (forward substitution). */
function forward(l: Float64Array, n: number, b: ArrayLike<number>): Float64Array {
  const z = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    let s = b[i]!;
    for (let k = 0; k < i; k++) s -= l[i * n + k]! * z[k]!;
    z[i] = s / l[i * n + i]!;
  }
  return z;
}

/** Solves Lᵀ x = z (back substitution). */
function backward(l: Float64Array, n: number, z: ArrayLike<number>): Float64Array {
  const x = new Float64Array(n);
  for (let i = n - 1; i >= 0; i--) {
    let s = z[i]!;
    for (let k = i + 1; k < n; k++) s -= l[k * n + i]! * x[k]!;
    x[i] = s / l[i * n + i]!;
  }
  return x;
}

export interface GpOptions {
  /** Length scales in input units, one per dimension. */
  lengthScales: readonly number[];
  /** Noise (jitter) variance, relative to the standardised output variance 1. */
  noise: number;
}

export interface GaussianProcess {
  /** Posterior mean and variance of f(x) in the units of y. */
  predict(x: readonly number[]): { mean: number; variance: number };
  /** Log marginal likelihood of the standardised outputs. */
  logMarginalLikelihood: number;
  lengthScales: readonly number[];
  /** The noise variance actually used (raised if the kernel matrix needed more jitter). */
  noise: number;
}

/** A GP posterior on (X, y): outputs standardised, kernel Matérn-5/2 with unit signal variance + noise on the diagonal. */
export function fitGp(X: readonly (readonly number[])[], y: readonly number[], opts: GpOptions): GaussianProcess {
  const n = X.length;
  if (n === 0 || y.length !== n) throw new RangeError(`fitGp: need as many outputs as inputs (>= 1), got ${n} inputs and ${y.length} outputs`);
  const ls = opts.lengthScales;
  const mean = y.reduce((a, v) => a + v, 0) / n;
  const sd = Math.sqrt(y.reduce((a, v) => a + (v - mean) ** 2, 0) / n) || 1;
  const ys = y.map((v) => (v - mean) / sd);
  const K = new Float64Array(n * n);
  for (let i = 0; i < n; i++) for (let j = 0; j <= i; j++) K[i * n + j] = K[j * n + i] = matern52(scaledDistance(X[i]!, X[j]!, ls));
  let noise = opts.noise;
  let L: Float64Array | null = null;
  for (;;) {
    const A = K.slice();
    for (let i = 0; i < n; i++) A[i * n + i] = A[i * n + i]! + noise;
    L = cholesky(A, n);
    if (L || noise >= 1e-2) break;
    noise = Math.max(noise * 10, 1e-10);
  }
  if (!L) throw new RangeError(`fitGp: kernel matrix not positive definite even with noise ${noise} (duplicate inputs?)`);
  const chol = L;
  const alpha = backward(chol, n, forward(chol, n, ys));
  let lml = -0.5 * n * Math.log(2 * Math.PI);
  for (let i = 0; i < n; i++) lml -= 0.5 * ys[i]! * alpha[i]! + Math.log(chol[i * n + i]!);
  return {
    lengthScales: ls,
    noise,
    logMarginalLikelihood: lml,
    predict(x) {
      const k = new Float64Array(n);
      for (let i = 0; i < n; i++) k[i] = matern52(scaledDistance(x, X[i]!, ls));
      let mu = 0;
      for (let i = 0; i < n; i++) mu += k[i]! * alpha[i]!;
      const v = forward(chol, n, k);
      let q = 0;
      for (let i = 0; i < n; i++) q += v[i]! * v[i]!;
      const variance = Math.max(0, 1 - q);
      return { mean: mean + sd * mu, variance: sd * sd * variance };
    },
  };
}

/** The GP with the best log marginal likelihood over the length-scale (and noise) grids; fixed values skip their grid. */
export function fitGpByGrid(X: readonly (readonly number[])[], y: readonly number[], fixed: { lengthScales?: number[]; noise?: number } = {}): GaussianProcess {
  const d = X[0]?.length ?? 0;
  const scaleSets: number[][] = fixed.lengthScales
    ? [fixed.lengthScales]
    : d <= 3
      ? cartesian(d, LENGTH_SCALE_GRID)
      : LENGTH_SCALE_GRID.map((s) => Array.from({ length: d }, () => s));
  const noises = fixed.noise !== undefined ? [fixed.noise] : NOISE_GRID;
  let best: GaussianProcess | undefined;
  for (const lengthScales of scaleSets) {
    for (const noise of noises) {
      const gp = fitGp(X, y, { lengthScales, noise });
      if (!best || gp.logMarginalLikelihood > best.logMarginalLikelihood) best = gp;
    }
  }
  return best!;
}

function cartesian(d: number, values: readonly number[]): number[][] {
  let out: number[][] = [[]];
  for (let i = 0; i < d; i++) out = out.flatMap((p) => values.map((v) => [...p, v]));
  return out;
}

/** erfc(x), Numerical Recipes' Chebyshev fit (fractional error < 1.2e-7 everywhere). */
export function erfc(x: number): number {
  const z = Math.abs(x);
  const t = 1 / (1 + 0.5 * z);
  const r =
    t *
    Math.exp(
      -z * z - 1.26551223 + t * (1.00002368 + t * (0.37409196 + t * (0.09678418 + t * (-0.18628806 + t * (0.27886807 + t * (-1.13520398 + t * (1.48851587 + t * (-0.82215223 + t * 0.17087277)))))))),
    );
  return x >= 0 ? r : 2 - r;
}

/** Expected improvement over `best` (maximisation) of a Gaussian N(mean, sd²), with margin xi. */
export function expectedImprovement(mean: number, sd: number, best: number, xi = 0): number {
  const gain = mean - best - xi;
  if (!(sd > 0)) return Math.max(0, gain);
  const z = gain / sd;
  const cdf = 0.5 * erfc(-z / Math.SQRT2);
  const pdf = Math.exp(-0.5 * z * z) / Math.sqrt(2 * Math.PI);
  return Math.max(0, gain * cdf + sd * pdf);
}

const randomPoint = (rng: Rng, d: number) => Array.from({ length: d }, () => rng.nextFloat());
const toBox = (u: readonly number[], bounds: Bounds) => u.map((v, i) => bounds[i]![0] + v * (bounds[i]![1] - bounds[i]![0]));

/** Next point (unit box) maximising EI under `gp`, or the most uncertain candidate if nothing expects improvement. */
function proposeNext(gp: GaussianProcess, U: readonly number[][], yBest: number, xi: number, rng: Rng, numCandidates: number, d: number): number[] {
  const ei = (u: readonly number[]) => {
    const p = gp.predict(u);
    return expectedImprovement(p.mean, Math.sqrt(p.variance), yBest, xi);
  };
  const cands = Array.from({ length: numCandidates }, () => randomPoint(rng, d));
  const scored = cands.map((u) => ({ u, v: ei(u) }));
  const starts = scored
    .slice()
    .sort((a, b) => b.v - a.v)
    .slice(0, 5);
  const means = U.map((u) => gp.predict(u).mean);
  const bestObserved = U[means.indexOf(Math.max(...means))]!;
  starts.push({ u: bestObserved.slice(), v: ei(bestObserved) });
  let best = starts[0]!;
  for (const s of starts) {
    const r = refine(s.u, s.v, ei);
    if (r.v > best.v) best = r;
  }
  const tooClose = U.some((u) => u.every((v, i) => Math.abs(v - best.u[i]!) < 1e-6));
  if (best.v > 0 && !tooClose) return best.u;
  // Nothing expects improvement (or the maximiser is a known point): explore where the GP knows least.
  let pick = cands[0]!;
  let maxVar = -1;
  for (const u of cands) {
    const v = gp.predict(u).variance;
    if (v > maxVar) [maxVar, pick] = [v, u];
  }
  return pick;
}

/** Pattern search on the unit box: coordinate moves of ±step, halving the step when none improves. */
function refine(u0: readonly number[], v0: number, f: (u: readonly number[]) => number): { u: number[]; v: number } {
  let u = u0.slice();
  let v = v0;
  let step = 0.1;
  while (step >= 1e-4) {
    let moved = false;
    for (let i = 0; i < u.length; i++) {
      for (const dir of [1, -1]) {
        const t = u.slice();
        t[i] = Math.min(1, Math.max(0, t[i]! + dir * step));
        const tv = f(t);
        if (tv > v) [u, v, moved] = [t, tv, true];
      }
    }
    if (!moved) step /= 2;
  }
  return { u, v };
}

/**
 * Maximises f over the box `bounds` with `initial` random + `iterations` EI-guided evaluations (deterministic for a
 * seed, given a deterministic f). Throws if f returns a non-finite value (naming the trial and point).
 */
export async function bayesOpt(f: (x: number[], trial: number) => number | Promise<number>, bounds: Bounds, opts: BayesOptOptions): Promise<BayesOptResult> {
  const d = bounds.length;
  bounds.forEach(([lo, hi], i) => {
    if (!(Number.isFinite(lo) && Number.isFinite(hi) && lo <= hi)) throw new RangeError(`bayesOpt: bounds[${i}] must be finite [lo, hi] with lo <= hi, got [${lo}, ${hi}]`);
  });
  const initial = opts.initial ?? 5;
  const iterations = opts.iterations ?? 25;
  if (d === 0 || initial < 1) throw new RangeError(`bayesOpt: need >= 1 dimension and >= 1 initial trial, got ${d} and ${initial}`);
  const rng = createRng(opts.seed);
  const trials: Trial[] = [];
  const U: number[][] = [];
  const run = async (u: number[], phase: Trial["phase"]) => {
    const i = trials.length;
    const x = toBox(u, bounds);
    const y = await f(x, i);
    if (!Number.isFinite(y)) throw new RangeError(`bayesOpt: trial ${i} at x = [${x.join(", ")}] returned ${y}`);
    const t: Trial = { x, y, phase };
    trials.push(t);
    U.push(u);
    opts.onTrial?.(t, i);
  };
  for (let i = 0; i < initial; i++) await run(randomPoint(rng, d), "random");
  for (let i = 0; i < iterations; i++) {
    const ys = trials.map((t) => t.y);
    const gp = fitGpByGrid(U, ys, { lengthScales: opts.lengthScales, noise: opts.noise });
    const yBest = Math.max(...ys);
    const yMean = ys.reduce((a, v) => a + v, 0) / ys.length;
    const sd = Math.sqrt(ys.reduce((a, v) => a + (v - yMean) ** 2, 0) / ys.length) || 1;
    await run(proposeNext(gp, U, yBest, (opts.xi ?? 0.01) * sd, rng, opts.candidates ?? 2000, d), "guided");
  }
  const best = trials.reduce((b, t) => (t.y > b.y ? t : b), trials[0]!);
  return { best, trials };
}
