// Bayesian optimisation (reduce/bayes_opt.ts): Matérn-5/2 vs its closed form (literal values computed independently),
// Cholesky on a textbook matrix, GP posterior interpolation, EI closed form, and BO finding the known maximisers of a
// quadratic and of the negative Branin function in 30 seeded, deterministic evaluations. Plain numbers: no tensors,
// so nothing differs between the wasm and cpu backends.
import { test } from "node:test";
import assert from "node:assert/strict";
import { bayesOpt, cholesky, erfc, expectedImprovement, fitGp, matern52 } from "../../reduce/bayes_opt.js";
import { createRng } from "../../core/rng.js";

const close = (a: number, b: number, tol: number, what: string) => assert.ok(Math.abs(a - b) <= tol, `${what}: ${a} vs ${b} (tol ${tol})`);

test("matern52 matches (1 + √5 r + 5r²/3) exp(-√5 r) at known points", () => {
  // Values from Python's math module.
  close(matern52(0), 1, 1e-15, "r=0");
  close(matern52(0.5), 0.8286491424181253, 1e-14, "r=0.5");
  close(matern52(1), 0.5239941088318203, 1e-14, "r=1");
  close(matern52(2), 0.13866021913850426, 1e-14, "r=2");
  // Decreasing, positive.
  for (let r = 0; r < 5; r += 0.25) assert.ok(matern52(r + 0.25) < matern52(r) && matern52(r) > 0);
});

test("the GP uses the Matérn-5/2 kernel: one training point, posterior variance 1 - k(r)²/(1 + noise)", () => {
  const gp = fitGp([[0, 0]], [3], { lengthScales: [0.5, 2], noise: 1e-6 });
  for (const [x, r] of [[[0.5, 0], 1], [[0, 1], 0.5], [[0.3, 1.6], Math.hypot(0.6, 0.8)]] as [number[], number][]) {
    const { mean, variance } = gp.predict(x);
    const k = matern52(r);
    close(variance, 1 - (k * k) / (1 + 1e-6), 1e-9, `variance at [${x}]`);
    close(mean, 3, 1e-12, `mean at [${x}] (one point: zero standardised residual)`);
  }
});

test("cholesky: textbook 3x3 factor, null for a matrix that is not positive definite", () => {
  const a = Float64Array.from([4, 12, -16, 12, 37, -43, -16, -43, 98]);
  assert.deepEqual(Array.from(cholesky(a, 3)!), [2, 0, 0, 6, 1, 0, -8, 5, 3]);
  assert.equal(cholesky(Float64Array.from([1, 2, 2, 1]), 2), null);
});

test("GP posterior interpolates its training points (mean ≈ value, variance ≈ 0) and reverts to the prior far away", () => {
  const rng = createRng(7);
  const X = Array.from({ length: 12 }, () => [rng.nextFloat(), rng.nextFloat()]);
  const f = ([a, b]: number[]) => Math.sin(3 * a!) + Math.cos(5 * b!) + a! * b!;
  const y = X.map(f);
  const mean = y.reduce((s, v) => s + v, 0) / y.length;
  const varY = y.reduce((s, v) => s + (v - mean) ** 2, 0) / y.length;
  const gp = fitGp(X, y, { lengthScales: [0.3, 0.3], noise: 1e-8 });
  X.forEach((x, i) => {
    const p = gp.predict(x);
    close(p.mean, y[i]!, 1e-5, `mean at training point ${i}`);
    assert.ok(p.variance < 1e-6 * varY, `variance at training point ${i}: ${p.variance}`);
  });
  const mid = gp.predict([0.5 * (X[0]![0]! + X[1]![0]!) + 0.07, 0.5 * (X[0]![1]! + X[1]![1]!)]);
  assert.ok(mid.variance > 1e-4 * varY, "variance between points is positive");
  const far = gp.predict([50, 50]);
  close(far.mean, mean, 1e-9, "far mean = the constant prior mean");
  close(far.variance, varY, 1e-9, "far variance = the prior variance");
});

test("erfc and expected improvement against closed forms", () => {
  close(erfc(0), 1, 2e-7, "erfc(0)");
  close(erfc(1), 0.15729920705028513, 2e-7, "erfc(1)");
  close(erfc(-0.5), 1.5204998778130465, 2e-7, "erfc(-0.5)");
  close(erfc(2.5), 0.0004069520174449589, 1e-10, "erfc(2.5)");
  close(expectedImprovement(1, 1, 1, 0), 0.3989422804014327, 1e-7, "EI at mean = best, sd 1: φ(0)");
  close(expectedImprovement(2, 0, 1, 0), 1, 0, "sd 0: plain gain");
  close(expectedImprovement(0, 0, 1, 0), 0, 0, "sd 0, no gain");
  // Large z: EI ≈ gain; very negative z: EI ≈ 0.
  close(expectedImprovement(11, 1, 1, 0), 10, 1e-9, "EI, z = 10");
  assert.ok(expectedImprovement(-9, 1, 1, 0) < 1e-20);
});

test("BO finds the maximiser of a quadratic in 5 + 25 evaluations, deterministically for a seed", async () => {
  const f = ([x, y]: number[]) => -((x! - 0.3) ** 2 + 2 * (y! + 0.2) ** 2);
  let calls = 0;
  const run = () => bayesOpt((x) => (calls++, f(x)), [[-1, 1], [-1, 1]], { seed: 3 });
  const a = await run();
  assert.equal(calls, 30);
  assert.equal(a.trials.length, 30);
  assert.deepEqual(a.trials.map((t) => t.phase), [...Array(5).fill("random"), ...Array(25).fill("guided")]);
  assert.ok(a.best.y > -3e-3, `best value ${a.best.y}`);
  close(a.best.x[0]!, 0.3, 0.05, "x");
  close(a.best.x[1]!, -0.2, 0.05, "y");
  for (const t of a.trials) t.x.forEach((v) => assert.ok(v >= -1 && v <= 1, "inside the bounds"));
  const b = await run();
  assert.deepEqual(b.trials, a.trials, "same seed, same trials");
  const c = await bayesOpt(f, [[-1, 1], [-1, 1]], { seed: 4 });
  assert.notDeepEqual(c.trials[0], a.trials[0], "another seed draws other points");
});

test("BO on the negative Branin function gets within 0.1 of its maximum -0.397887 and beats random search", async () => {
  const branin = ([x1, x2]: number[]) => {
    const b = 5.1 / (4 * Math.PI ** 2);
    const c = 5 / Math.PI;
    const t = 1 / (8 * Math.PI);
    return -((x2! - b * x1! ** 2 + c * x1! - 6) ** 2 + 10 * (1 - t) * Math.cos(x1!) + 10);
  };
  const bounds: [number, number][] = [[-5, 10], [0, 15]];
  const r = await bayesOpt(branin, bounds, { seed: 0, initial: 5, iterations: 25 });
  assert.ok(r.best.y > -0.397887 - 0.1, `best ${r.best.y} at [${r.best.x}]`);
  // The three maximisers: (-π, 12.275), (π, 2.275), (9.42478, 2.475).
  const near = [[-Math.PI, 12.275], [Math.PI, 2.275], [9.42478, 2.475]].some(([a, b]) => Math.hypot(r.best.x[0]! - a!, r.best.x[1]! - b!) < 0.5);
  assert.ok(near, `best point [${r.best.x}] is near one of the three maximisers`);
  const rng = createRng(0);
  let randomBest = -Infinity;
  for (let i = 0; i < 30; i++) randomBest = Math.max(randomBest, branin([rng.uniform(-5, 10), rng.uniform(0, 15)]));
  assert.ok(r.best.y > randomBest, `BO ${r.best.y} vs 30 random points ${randomBest}`);
});

test("bayesOpt rejects bad bounds and non-finite objective values, naming them", async () => {
  await assert.rejects(bayesOpt(() => 0, [[1, 0]], { seed: 0 }), /bounds\[0\]/);
  await assert.rejects(bayesOpt(() => NaN, [[0, 1]], { seed: 0 }), /trial 0 at x = \[.*\] returned NaN/);
});
