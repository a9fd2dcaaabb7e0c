// core/rng.ts: known answers from the reference C xoshiro128** (Blackman & Vigna, prng.di.unimi.it/xoshiro128starstar.c)
// and a C restatement of the seeding, exact resume through JSON state, and distribution invariants.
import { test } from "node:test";
import assert from "node:assert/strict";
import { createRng, rngFromState, type RngState } from "../../core/rng.js";

test("xoshiro128** matches the reference C output from state [1, 2, 3, 4]", () => {
  const r = rngFromState({ algorithm: "xoshiro128**", s: [1, 2, 3, 4], spare: null });
  const got: number[] = [];
  for (let i = 0; i < 1000; i++) got.push(r.nextUint32());
  assert.deepEqual(got.slice(0, 6), [11520, 0, 5927040, 70819200, 2031721883, 1637235492]);
  assert.equal(got[999], 3170714187);
  assert.deepEqual(r.getState().s, [2954884481, 294556968, 2598411021, 550772539]);
});

test("seeding (splitmix32 over both 32-bit halves of the seed) matches a C restatement", () => {
  const a = createRng(42);
  assert.deepEqual(a.getState().s, [939911724, 3948730756, 321366731, 3317318717]);
  assert.deepEqual([a.nextUint32(), a.nextUint32(), a.nextUint32()], [2837322924, 544945897, 479756282]);
  const b = createRng(5_000_000_000);
  assert.deepEqual(b.getState().s, [816665866, 3414616330, 3272415836, 2606092414]);
  assert.deepEqual([b.nextUint32(), b.nextUint32(), b.nextUint32()], [1534813532, 1704924780, 3184046871]);
  assert.notDeepEqual(createRng(1).getState().s, createRng(2 ** 32 + 1).getState().s, "high bits of the seed matter");
  assert.throws(() => createRng(-1), /non-negative safe integer/);
  assert.throws(() => createRng(1.5), /non-negative safe integer/);
});

test("getState/setState through JSON resumes exactly, including a pending normal draw", () => {
  const r = createRng(7);
  for (let i = 0; i < 10; i++) r.nextUint32();
  r.normal(); // leaves a spare Box-Muller draw pending
  const saved = JSON.parse(JSON.stringify(r.getState())) as RngState;
  assert.notEqual(saved.spare, null);
  const seq = () => [r.normal(), r.normal(), r.nextFloat(), r.nextUint32(), r.nextInt(10)];
  const want = seq();
  const resumed = rngFromState(saved);
  assert.deepEqual([resumed.normal(), resumed.normal(), resumed.nextFloat(), resumed.nextUint32(), resumed.nextInt(10)], want);
  r.setState(saved);
  assert.deepEqual(seq(), want);
  assert.throws(() => r.setState({ algorithm: "xoshiro128**", s: [0, 0, 0, 0], spare: null }), /not a valid/);
  assert.throws(() => r.setState({ algorithm: "pcg32", s: [1, 2, 3, 4], spare: null } as unknown as RngState), /not a valid/);
});

test("nextFloat in [0, 1), nextInt in range and unbiased, normal has mean 0 and std 1", () => {
  const r = createRng(123);
  const n = 200_000;
  let sum = 0, min = 1, max = 0;
  for (let i = 0; i < n; i++) {
    const u = r.nextFloat();
    sum += u;
    min = Math.min(min, u);
    max = Math.max(max, u);
    assert.ok(u >= 0 && u < 1 && Math.fround(u) === u);
  }
  assert.ok(Math.abs(sum / n - 0.5) < 5 * Math.sqrt(1 / 12 / n), `uniform mean ${sum / n}`);
  assert.ok(min < 1e-4 && max > 1 - 1e-4);
  const counts = new Array<number>(7).fill(0);
  for (let i = 0; i < 70_000; i++) counts[r.nextInt(7)]!++;
  // chi-square with 6 degrees of freedom: 99.99% quantile is about 27.9
  const chi = counts.reduce((a, c) => a + (c - 10_000) ** 2 / 10_000, 0);
  assert.ok(chi < 27.9, `nextInt(7) counts ${counts} (chi2 ${chi})`);
  assert.throws(() => r.nextInt(0), /nextInt/);
  let s1 = 0, s2 = 0;
  for (let i = 0; i < n; i++) {
    const z = r.normal();
    s1 += z;
    s2 += z * z;
  }
  const mean = s1 / n;
  const std = Math.sqrt(s2 / n - mean * mean);
  assert.ok(Math.abs(mean) < 5 / Math.sqrt(n), `normal mean ${mean}`);
  assert.ok(Math.abs(std - 1) < 5 * Math.sqrt(0.5 / n), `normal std ${std}`);
});
