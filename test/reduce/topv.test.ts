// TopV token selection (reduce/topv.ts): Sinkhorn against a float64 reference written here, plan marginals, the
// separable-cost pitfall, a ranking that is neither constant nor a function of the token norm (on real-ish features
// from the golden CLIP-336 tower), budgets and uniform recovery, batching, determinism, tensor hygiene; wasm and cpu.
import { test } from "node:test";
import assert from "node:assert/strict";
import path from "node:path";
import { tf, setBackend } from "../../core/backend.js";
import { assertNoTensorLeak } from "../../core/memory.js";
import { ConfigError } from "../../core/errors.js";
import { createRng } from "../../core/rng.js";
import {
  TOPV_DEFAULTS,
  resolveTopvOptions,
  selectWithRecovery,
  sinkhornLog,
  topvImportance,
  topvImportanceBatch,
  topvKeep,
  topvKeepBatch,
  topvSelect,
  type TopvOptions,
} from "../../reduce/topv.js";
import { goldenDir, maxAbsDiff, readGoldenVector } from "../helpers.js";

// ---- float64 references, written independently of the code under test -------------------------------------------

function lse(xs: number[]): number {
  const m = Math.max(...xs);
  return m + Math.log(xs.reduce((s, x) => s + Math.exp(x - m), 0));
}

/** log-domain Sinkhorn in float64: log v = 0, then iters × (row step, column step); returns log P [N][M]. */
function sinkhorn64(C: number[][], eps: number, iters: number, a: number[], b: number[]): number[][] {
  const N = C.length;
  const M = C[0]!.length;
  const logK = C.map((row) => row.map((c) => -c / eps));
  let logU = new Array<number>(N).fill(0);
  let logV = new Array<number>(M).fill(0);
  for (let t = 0; t < iters; t++) {
    logU = logK.map((row, i) => Math.log(a[i]!) - lse(row.map((k, j) => k + logV[j]!)));
    logV = b.map((bj, j) => Math.log(bj) - lse(logK.map((row, i) => row[j]! + logU[i]!)));
  }
  return logK.map((row, i) => row.map((k, j) => k + logU[i]! + logV[j]!));
}

function randMatrix(rng: ReturnType<typeof createRng>, n: number, m: number, f = () => rng.nextFloat()): number[][] {
  return Array.from({ length: n }, () => Array.from({ length: m }, f));
}

function normalised(v: number[]): number[] {
  const s = v.reduce((x, y) => x + y, 0);
  return v.map((x) => x / s);
}

/** Random features [N, D] with a little spatial smoothness on the grid (neighbours share a component). */
function features(seed: number, rows: number, cols: number, D: number): Float32Array {
  const rng = createRng(seed);
  const base = Array.from({ length: (rows >> 2) + 1 }, () => Array.from({ length: (cols >> 2) + 1 }, () => Array.from({ length: D }, () => rng.normal())));
  const out = new Float32Array(rows * cols * D);
  for (let t = 0; t < rows * cols; t++) {
    const r = Math.floor(t / cols);
    const c = t % cols;
    const scale = 0.5 + 2 * rng.nextFloat(); // token norms vary independently of content
    for (let d = 0; d < D; d++) out[t * D + d] = scale * (base[r >> 2]![c >> 2]![d]! + rng.normal());
  }
  return out;
}

/** Targets as a post-RMSNorm-like view of the sources plus noise (what layer Li's norm output roughly is). */
function targetsFrom(x: Float32Array, N: number, D: number, seed: number): Float32Array {
  const rng = createRng(seed);
  const y = new Float32Array(N * D);
  for (let t = 0; t < N; t++) {
    let ss = 0;
    for (let d = 0; d < D; d++) ss += x[t * D + d]! ** 2;
    const rms = Math.sqrt(ss / D) + 1e-6;
    for (let d = 0; d < D; d++) y[t * D + d] = x[t * D + d]! / rms + 0.7 * rng.normal();
  }
  return y;
}

function rowNorms(x: Float32Array, N: number, D: number): number[] {
  return Array.from({ length: N }, (_, t) => Math.hypot(...x.subarray(t * D, (t + 1) * D)));
}

function topByScore(s: ArrayLike<number>, k: number): number[] {
  return Array.from({ length: s.length }, (_, i) => i).sort((i, j) => s[j]! - s[i]! || i - j).slice(0, k);
}

/** Real-ish features: CLIP-336 golden hidden states (24x24 patches, D = 32); sources = layer 1 in, targets = RMSNorm of layer 2. */
function clip336(): { x: Float32Array; y: Float32Array; N: number; D: number } {
  const dir = path.join(goldenDir(), "models/vectors/clip_336");
  const h1 = readGoldenVector(path.join(dir, "hidden_states_1.json"));
  const h2 = readGoldenVector(path.join(dir, "hidden_states_2.json"));
  const [, T, D] = h1.shape as [number, number, number];
  const N = T - 1;
  const x = (h1.data as Float32Array).slice(D); // drop CLS
  const raw = (h2.data as Float32Array).slice(D);
  const y = new Float32Array(N * D);
  for (let t = 0; t < N; t++) {
    let ss = 0;
    for (let d = 0; d < D; d++) ss += raw[t * D + d]! ** 2;
    const rms = Math.sqrt(ss / D + 1e-6);
    for (let d = 0; d < D; d++) y[t * D + d] = raw[t * D + d]! / rms;
  }
  return { x, y, N, D };
}

/** Does s rank the tokens like norm (or its reverse)? True only when every pair is ordered the same way. */
function monotoneIn(s: ArrayLike<number>, norm: number[]): boolean {
  let up = 0;
  let down = 0;
  for (let i = 0; i < norm.length; i++) {
    for (let j = i + 1; j < norm.length; j++) {
      const p = Math.sign(norm[j]! - norm[i]!) * Math.sign(s[j]! - s[i]!);
      if (p > 0) up++;
      else if (p < 0) down++;
    }
  }
  return up === 0 || down === 0;
}

function spread(s: ArrayLike<number>): number {
  const v = Array.from(s);
  const mean = v.reduce((a, b) => a + b, 0) / v.length;
  return (Math.max(...v) - Math.min(...v)) / mean;
}

const t2 = (data: Float32Array, n: number, d: number) => tf.tensor2d(data, [n, d]);

for (const backend of ["wasm", "cpu"] as const) {
  test(`sinkhornLog matches a float64 log-domain Sinkhorn within 1e-5, and its marginals hold (${backend})`, async () => {
    await setBackend(backend, { quiet: true });
    const rng = createRng(11);
    for (const [N, M, eps, iters] of [
      [6, 8, 0.1, 3],
      [30, 30, 0.05, 3],
      [12, 9, 0.2, 7],
    ] as const) {
      const C = randMatrix(rng, N, M);
      const a = normalised(Array.from({ length: N }, () => 0.2 + rng.nextFloat()));
      const b = normalised(Array.from({ length: M }, () => 0.2 + rng.nextFloat()));
      const ref = sinkhorn64(C, eps, iters, a, b);
      const cost = tf.tensor2d(C);
      const r = await assertNoTensorLeak("sinkhornLog", () => {
        const out = sinkhornLog(cost, { iterations: iters, epsilon: eps, a, b });
        return { logPlan: out.logPlan.arraySync(), plan: tf.tidy(() => tf.exp(out.logPlan).arraySync()), n: tf.dispose([out.logPlan, out.logU, out.logV]) };
      });
      cost.dispose();
      const diff = maxAbsDiff(r.logPlan.flat(), ref.flat());
      assert.ok(diff <= 1e-5, `${N}x${M}: log plan differs from float64 by ${diff}`);
      // after the last column step: columns sum to b exactly, rows only approximately to a
      for (let j = 0; j < M; j++) {
        const col = r.plan.reduce((s, row) => s + row[j]!, 0);
        assert.ok(Math.abs(col - b[j]!) <= 1e-6 * Math.max(1, 10 * b[j]!), `${N}x${M}: column ${j} sums to ${col}, b = ${b[j]}`);
      }
      const rowErr = r.plan.reduce((s, row, i) => s + Math.abs(row.reduce((x, y) => x + y, 0) - a[i]!), 0);
      assert.ok(rowErr < 0.5, `${N}x${M}: row marginal L1 error ${rowErr}`);
    }
  });

  test(`sinkhornLog: rows converge to a with more iterations; uniform marginals by default (${backend})`, async () => {
    await setBackend(backend, { quiet: true });
    const rng = createRng(5);
    const cost = tf.tensor2d(randMatrix(rng, 10, 10));
    const rowErr = (iters: number) =>
      tf.tidy(() => {
        const { logPlan, logU, logV } = sinkhornLog(cost, { iterations: iters, epsilon: 0.1 });
        const p = tf.exp(logPlan);
        const cols = tf.sum(p, 0).dataSync();
        for (const c of cols) assert.ok(Math.abs(c - 0.1) < 1e-6, `column sum ${c} != 1/M`);
        tf.dispose([logU, logV]);
        return tf.sum(tf.abs(tf.sub(tf.sum(p, 1), 0.1))).dataSync()[0]!;
      });
    const e1 = rowErr(1);
    const e3 = rowErr(3);
    const e60 = rowErr(60);
    cost.dispose();
    assert.ok(e1 > e3 && e3 > e60, `row error should shrink: ${e1}, ${e3}, ${e60}`);
    assert.ok(e60 < 1e-4, `row error after 60 iterations ${e60}`);
  });

  test(`a source-only (row) cost term leaves the Sinkhorn plan unchanged; γ in central "cost" mode is a no-op (${backend})`, async () => {
    await setBackend(backend, { quiet: true });
    const rng = createRng(21);
    for (let trial = 0; trial < 3; trial++) {
      const C = randMatrix(rng, 9, 7);
      const f = Array.from({ length: 9 }, () => 3 * rng.nextFloat());
      const C2 = C.map((row, i) => row.map((c) => c + f[i]!));
      const plan = (m: number[][]) =>
        tf.tidy(() => {
          const { logPlan, logU, logV } = sinkhornLog(tf.tensor2d(m), { iterations: 3, epsilon: 0.1 });
          tf.dispose([logU, logV]);
          return tf.exp(logPlan).dataSync();
        });
      const p1 = plan(C);
      const p2 = plan(C2);
      assert.ok(maxAbsDiff(p1, p2) < 1e-7, `row-only term changed the plan by ${maxAbsDiff(p1, p2)}`);
    }
    // pipeline level: literal additive centre term does nothing, the marginal prior does something
    const [R, Cc, D] = [8, 8, 12];
    const x = features(3, R, Cc, D);
    const y = targetsFrom(x, R * Cc, D, 4);
    const X = t2(x, R * Cc, D);
    const Y = t2(y, R * Cc, D);
    const grid = { rows: R, cols: Cc };
    const imp = (o: Partial<TopvOptions>) => topvImportance(X, Y, grid, o).importance;
    const d0 = maxAbsDiff(imp({ central: "cost", gamma: 0 }), imp({ central: "cost", gamma: 5 }));
    const d1 = maxAbsDiff(imp({ central: "marginal", gamma: 0 }), imp({ central: "marginal", gamma: 5 }));
    tf.dispose([X, Y]);
    assert.ok(d0 < 1e-7, `central "cost": γ changed importance by ${d0}`);
    assert.ok(d1 > 1e-4, `central "marginal": γ changed importance only by ${d1}`);
  });

  test(`ranking on real-ish CLIP-336 features (24x24): not constant, not monotone in token norm, norm-invariant (${backend})`, async () => {
    await setBackend(backend, { quiet: true });
    const { x, y, N, D } = clip336();
    const grid = { rows: 24, cols: 24 };
    const X = t2(x, N, D);
    const Y = t2(y, N, D);
    const norm = rowNorms(x, N, D);
    const variants: Partial<TopvOptions>[] = [{}, { gamma: 0 }, { readout: "diagonal" }, { readout: "costWeighted" }];
    for (const o of backend === "cpu" ? variants.slice(0, 2) : variants) {
      const what = JSON.stringify(o);
      const { importance } = await assertNoTensorLeak("topvImportance", () => topvImportance(X, Y, grid, o));
      assert.equal(importance.length, N);
      assert.ok(spread(importance) > 1e-2, `${what}: importance is (nearly) constant, spread ${spread(importance)}`);
      assert.ok(!monotoneIn(importance, norm), `${what}: importance is a monotone function of the token norm`);
      const byImp = new Set(topByScore(importance, 64));
      const overlap = topByScore(norm, 64).filter((i) => byImp.has(i)).length;
      assert.ok(overlap < 56, `${what}: top-64 by importance is nearly top-64 by norm (${overlap} shared)`);
    }
    // rescaling source rows (token norms) does not move the ranking: the feature cost uses directions only
    const rng = createRng(9);
    const xs = x.slice();
    for (let t = 0; t < N; t++) {
      const s = 0.1 + 10 * rng.nextFloat();
      for (let d = 0; d < D; d++) xs[t * D + d]! *= s;
    }
    const XS = t2(xs, N, D);
    const a = topvImportance(X, Y, grid).importance;
    const b = topvImportance(XS, Y, grid).importance;
    tf.dispose([X, Y, XS]);
    const rel = maxAbsDiff(a, b) / Math.max(...a);
    assert.ok(rel < 1e-4, `importance moved by ${rel} (relative) when only token norms changed`);
  });

  test(`each of α, β, γ matters; plan returned with columns 1/N and row sums = importance (${backend})`, async () => {
    await setBackend(backend, { quiet: true });
    const [R, Cc, D] = [12, 12, 16];
    const N = R * Cc;
    const x = features(31, R, Cc, D);
    const X = t2(x, N, D);
    const Y = t2(targetsFrom(x, N, D, 32), N, D);
    const grid = { rows: R, cols: Cc };
    const base = topvKeep(X, Y, grid, 36);
    for (const k of ["alpha", "beta", "gamma"] as const) {
      const off = topvKeep(X, Y, grid, 36, { [k]: 0 });
      assert.notDeepEqual(off, base, `${k} = 0 left the kept set unchanged`);
    }
    const before = tf.memory().numTensors;
    const { importance, plan } = topvImportance(X, Y, grid, { returnPlan: true });
    assert.equal(tf.memory().numTensors, before + 1, "returnPlan: only the plan should be new");
    assert.ok(plan);
    assert.deepEqual(plan.shape, [N, N]);
    const cols = tf.tidy(() => tf.sum(plan, 0).dataSync());
    const rows = tf.tidy(() => tf.sum(plan, 1).dataSync());
    plan.dispose();
    for (const c of cols) assert.ok(Math.abs(c * N - 1) < 1e-4, `plan column sums to ${c}, want 1/${N}`);
    assert.ok(maxAbsDiff(rows, importance) < 1e-7, "row sums of the returned plan differ from the importance");
    tf.dispose([X, Y]);
  });

  test(`topvKeep: exact counts, sorted indices, keep = N and keep = 1, batch = single, deterministic (${backend})`, async () => {
    await setBackend(backend, { quiet: true });
    const [R, Cc, D] = [12, 12, 16];
    const N = R * Cc;
    const x1 = features(41, R, Cc, D);
    const x2 = features(42, R, Cc, D);
    const y1 = targetsFrom(x1, N, D, 43);
    const y2 = targetsFrom(x2, N, D, 44);
    const [X1, Y1, X2, Y2] = [t2(x1, N, D), t2(y1, N, D), t2(x2, N, D), t2(y2, N, D)];
    const grid = { rows: R, cols: Cc };
    const { importance } = topvImportance(X1, Y1, grid);
    for (const keep of [0, 1, 5, 36, 72, 143, N]) {
      const kept = await assertNoTensorLeak(`topvKeep ${keep}`, () => topvKeep(X1, Y1, grid, keep));
      assert.equal(kept.length, keep, `keep ${keep}: got ${kept.length}`);
      for (let i = 1; i < kept.length; i++) assert.ok(kept[i - 1]! < kept[i]!, `keep ${keep}: not strictly ascending`);
      assert.ok(kept.every((i) => Number.isInteger(i) && i >= 0 && i < N));
      assert.deepEqual(topvKeep(X1, Y1, grid, keep), kept, `keep ${keep}: not deterministic`);
    }
    assert.deepEqual(topvKeep(X1, Y1, grid, N), Array.from({ length: N }, (_, i) => i));
    assert.deepEqual(topvKeep(X1, Y1, grid, 1), topByScore(importance, 1), "keep = 1 is the most important token");
    assert.deepEqual(topvKeep(X1, Y1, grid, 1, { recoverRatio: 1 }), [Math.floor(N / 2)], "keep = 1, ρ = 1: the middle token");
    assert.deepEqual(topvImportance(X1, Y1, grid).importance, importance, "importance not deterministic");

    // batch of two = two singles
    const XB = tf.stack([X1, X2]) as tf.Tensor3D;
    const YB = tf.stack([Y1, Y2]) as tf.Tensor3D;
    const batch = await assertNoTensorLeak("topvKeepBatch", () => topvKeepBatch(XB, YB, grid, 48));
    assert.deepEqual(batch, [topvKeep(X1, Y1, grid, 48), topvKeep(X2, Y2, grid, 48)]);
    const ib = topvImportanceBatch(XB, YB, grid);
    assert.ok(maxAbsDiff(ib[0]!, importance) < 1e-7 * N, "batched importance differs from single");
    tf.dispose([X1, Y1, X2, Y2, XB, YB]);
  });

  test(`bad input: errors name the key or tensor (${backend})`, async () => {
    await setBackend(backend, { quiet: true });
    const X = tf.zeros([6, 4]) as tf.Tensor2D;
    const Y = tf.zeros([6, 4]) as tf.Tensor2D;
    const before = tf.memory().numTensors;
    assert.throws(() => topvKeep(X, Y, { rows: 2, cols: 2 }, 2), /topv\.grid/);
    assert.throws(() => topvKeep(X, Y, { rows: 2, cols: 3 }, 7), (e: unknown) => e instanceof ConfigError && /topv\.budget/.test(e.message));
    assert.throws(() => topvKeep(X, Y, { rows: 2, cols: 3 }, 2, { epsilon: 0 }), /topv\.epsilon/);
    assert.throws(() => topvKeep(X, Y, { rows: 2, cols: 3 }, 2, { iterations: 1.5 }), /topv\.iterations/);
    assert.throws(() => topvKeep(X, Y, { rows: 2, cols: 3 }, 2, { readout: "rowsum" as never }), /topv\.readout/);
    assert.throws(() => topvKeep(X, Y, { rows: 2, cols: 3 }, 2, { alhpa: 1 } as never), /topv\.alhpa: unknown/);
    const Z = tf.zeros([6, 5]) as tf.Tensor2D;
    assert.throws(() => topvKeep(X, Z, { rows: 2, cols: 3 }, 2), /targets must have the shape of sources/);
    Z.dispose();
    assert.equal(tf.memory().numTensors, before, "a failing call leaked tensors");
    // all-zero features are degenerate but must still give a valid, exact selection
    assert.deepEqual(topvKeep(X, Y, { rows: 2, cols: 3 }, 6), [0, 1, 2, 3, 4, 5]);
    assert.equal(topvKeep(X, Y, { rows: 2, cols: 3 }, 3).length, 3);
    tf.dispose([X, Y]);
  });
}

test("selectWithRecovery: top by score (ties -> lower index), recovered evenly spaced among the rest, total = K", () => {
  const rng = createRng(77);
  for (const N of [50, 144, 576]) {
    const s = Float32Array.from({ length: N }, () => Math.round(rng.nextFloat() * 20) / 20); // many ties
    for (const K of [1, 9, 40, Math.floor(N / 3), N - 1, N]) {
      for (const rho of [0, 0.1, 0.25, 0.5, 1]) {
        const r = selectWithRecovery(s, K, { recoverRatio: rho });
        const nRec = Math.floor(rho * K);
        assert.equal(r.kept.length, K);
        assert.equal(r.recovered.length, nRec);
        assert.deepEqual(r.top, topByScore(s, K - nRec), `N ${N} K ${K} ρ ${rho}: top set`);
        assert.deepEqual(r.kept, [...r.top, ...r.recovered].sort((a, b) => a - b));
        const topSet = new Set(r.top);
        const rest = Array.from({ length: N }, (_, i) => i).filter((i) => !topSet.has(i));
        const pos = r.recovered.map((i) => rest.indexOf(i));
        const step = rest.length / Math.max(nRec, 1);
        for (let m = 0; m < nRec; m++) {
          assert.ok(pos[m]! >= 0, "recovered a token that was not pruned");
          // one pick per equal bin of the rest, at (the floor of) the bin centre
          const centre = (m + 0.5) * step;
          assert.ok(pos[m]! <= centre && centre - pos[m]! < 1, `N ${N} K ${K} ρ ${rho}: pick ${m} at ${pos[m]}, bin centre ${centre}`);
          if (m > 0) assert.ok(Math.abs(pos[m]! - pos[m - 1]! - step) < 1, `uneven gap at ${m}`);
        }
        assert.equal(new Set(r.kept).size, K, "duplicate indices");
      }
    }
  }
  // a known answer: 10 tokens, scores descending with index, K = 4, ρ = 0.5 -> top {0, 1}; rest 2..9 (R = 8),
  // picks at rest[⌊(m + ½)·4⌋] = rest[2], rest[6] = 4, 8
  const r = selectWithRecovery([10, 9, 8, 7, 6, 5, 4, 3, 2, 1], 4, { recoverRatio: 0.5 });
  assert.deepEqual(r, { kept: [0, 1, 4, 8], top: [0, 1], recovered: [4, 8] });
  // additive (unofficial code): top K plus every 4th pruned token
  const a = selectWithRecovery([10, 9, 8, 7, 6, 5, 4, 3, 2, 1], 3, { recovery: "additive" });
  assert.deepEqual(a, { kept: [0, 1, 2, 3, 7], top: [0, 1, 2], recovered: [3, 7] });
  assert.throws(() => selectWithRecovery([1, 2, Number.NaN], 1), /importance\[2\]/);
});

test("TOPV_DEFAULTS follow the spec (§1.2 defaults table)", () => {
  assert.deepEqual(resolveTopvOptions(), {
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
  assert.ok(Object.isFrozen(TOPV_DEFAULTS));
});

test("wasm and cpu agree on the importance and the kept set (CLIP-336 features)", async () => {
  const { x, y, N, D } = clip336();
  const grid = { rows: 24, cols: 24 };
  const run = async (b: "wasm" | "cpu") => {
    await setBackend(b, { quiet: true });
    const X = t2(x, N, D);
    const Y = t2(y, N, D);
    const r = topvSelect(X, Y, grid, 144);
    tf.dispose([X, Y]);
    return r;
  };
  const w = await run("wasm");
  const c = await run("cpu");
  assert.ok(maxAbsDiff(w.importance, c.importance) < 1e-4 / N, `importance differs by ${maxAbsDiff(w.importance, c.importance)}`);
  const shared = w.kept.filter((i) => c.kept.includes(i)).length;
  assert.ok(shared >= 140, `kept sets share only ${shared} of 144`);
});
