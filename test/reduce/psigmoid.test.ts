// P-Sigmoid (reduce/psigmoid.ts): the curve's known values, schedule invariants, the FLOPs budget solver landing within
// one equivalent token of B (64/128/192 of 576 on LLaVA-1.5-7B dims), infeasible budgets named, and the BO search
// with a fake evaluator whose optimum is a known P-Sigmoid schedule (deterministic, resumable, within budget).
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { ConfigError } from "../../core/errors.js";
import { effectiveBounds, maxFloorRate, pSigmoidRate, pSigmoidSchedule, pSigmoidSearch, solveL0 } from "../../reduce/psigmoid.js";
import { flopsEquivalentTokens, readSchedule, scheduleFlops, uniformFlops, validateSchedule, type FlopsDims, type KeepSchedule } from "../../reduce/schedule.js";

const LLAVA_7B: FlopsDims = { numLayers: 32, numVisual: 576, textTokens: 40, hidden: 4096, intermediate: 11008 };

test("pSigmoidRate: 1 at layers 0-1, (1 + r_min)/2 at l0, → r_min deep, → 1 shallow", () => {
  assert.equal(pSigmoidRate(0, 2, 0.1, -5), 1);
  assert.equal(pSigmoidRate(1, 2, 0.1, -5), 1);
  assert.ok(Math.abs(pSigmoidRate(10, 0.7, 0.2, 10) - 0.6) < 1e-15);
  assert.ok(Math.abs(pSigmoidRate(31, 5, 0.2, 10) - 0.2) < 1e-12);
  assert.ok(Math.abs(pSigmoidRate(2, 5, 0.2, 20) - 1) < 1e-12);
  // r(l) = r_min + (1 - r_min) / (1 + e^{k(l - l0)}) at a generic point.
  assert.ok(Math.abs(pSigmoidRate(7, 0.5, 0.1, 5) - (0.1 + 0.9 / (1 + Math.exp(1)))) < 1e-15);
});

test("pSigmoidSchedule: valid (layers 0-1 full, non-increasing, in [0, N]) over a sweep of parameters", () => {
  for (const k of [0.05, 0.5, 2, 30]) {
    for (const rMin of [0, 0.1, 0.45]) {
      for (const l0 of [-40, 1, 9.3, 31, 80]) {
        const s = pSigmoidSchedule(k, rMin, l0, 32, 576);
        validateSchedule(s);
        assert.ok(s.keep.every((v) => v >= Math.round(rMin * 576) - 1), "never below the floor (rounding aside)");
      }
    }
  }
  assert.deepEqual(pSigmoidSchedule(1, 0.5, 3, 5, 10).keep, [10, 10, 9, 8, 6]); // 10·r(l), l = 2..4: 8.66, 7.5, 6.34 → 9, 8 (half up), 6
});

test("solveL0: FLOPs-equivalent tokens within one token of B (64, 128, 192 of 576), never above", () => {
  for (const B of [64, 128, 192]) {
    const cap = maxFloorRate(B, LLAVA_7B);
    for (const k of [0.1, 0.4, 1, 2.5, 4]) {
      for (const rMin of [0, 0.3 * cap, 0.85 * cap]) {
        const l0 = solveL0(k, rMin, B, LLAVA_7B);
        const s = pSigmoidSchedule(k, rMin, l0, 32, 576);
        const eq = flopsEquivalentTokens(s, LLAVA_7B);
        assert.ok(eq <= B + 1e-9 && eq > B - 1, `B ${B}, k ${k}, rMin ${rMin.toFixed(4)}: l0 ${l0}, equivalent ${eq}`);
        assert.ok(scheduleFlops(s, LLAVA_7B) <= uniformFlops(B, LLAVA_7B));
        // l0 is the largest such: a little later and the schedule overspends.
        const later = pSigmoidSchedule(k, rMin, l0 + 1e-6 * Math.max(1, Math.abs(l0)), 32, 576);
        assert.ok(scheduleFlops(later, LLAVA_7B) > uniformFlops(B, LLAVA_7B), "l0 is the boundary");
      }
    }
  }
});

test("maxFloorRate: the floor that alone spends the budget; infeasible budgets and floors are named", () => {
  for (const B of [64, 128, 192]) {
    const r = maxFloorRate(B, LLAVA_7B);
    const x = r * 576;
    const eq = flopsEquivalentTokens({ keep: [576, 576, ...Array(30).fill(x)] }, LLAVA_7B);
    assert.ok(Math.abs(eq - B) < 1e-6, `B ${B}: floor ${x} tokens gives ${eq}`);
  }
  // Layers 0-1 alone cost 2/32 of 576 + text: ~37 equivalent tokens, so B = 20 cannot be met.
  assert.throws(() => maxFloorRate(20, LLAVA_7B), (e: Error) => e instanceof ConfigError && /budget: 20 equivalent tokens cannot be met/.test(e.message));
  assert.throws(() => solveL0(1, 0.2, 64, LLAVA_7B), (e: Error) => e instanceof ConfigError && /rMin = 0.2.*rMin must be below 0.05/.test(e.message));
  assert.throws(() => solveL0(0, 0, 64, LLAVA_7B), /k: the sigmoid steepness must be a finite number > 0/);
  assert.deepEqual(effectiveBounds(192, LLAVA_7B).rMin[1], 0.9 * maxFloorRate(192, LLAVA_7B));
  assert.throws(() => effectiveBounds(64, LLAVA_7B, { k: [0.1, 4], rMin: [0.2, 0.5] }), /bounds.rMin: lower bound 0.2 leaves no feasible floor/);
  assert.throws(() => effectiveBounds(64, LLAVA_7B, { k: [0, 4], rMin: [0, 0.5] }), /bounds.k/);
});

test("pSigmoidSearch finds a known optimum with a fake evaluator, in budget, deterministically, and resumes", async () => {
  const B = 128;
  const target = pSigmoidSchedule(1.2, 0.06, solveL0(1.2, 0.06, B, LLAVA_7B), 32, 576).keep;
  // Accuracy falls with the distance to the target schedule (L1, normalised).
  const accuracyOf = (s: KeepSchedule) => 1 - s.keep.reduce((a, k, l) => a + Math.abs(k - target[l]!), 0) / (576 * 32);
  let calls = 0;
  const evaluate = async (s: KeepSchedule) => (calls++, accuracyOf(s));
  const dir = mkdtempSync(path.join(tmpdir(), "vzt-psigmoid-"));
  try {
    const statePath = path.join(dir, "state.json");
    const outputPath = path.join(dir, "psigmoid-128.json");
    const updates: number[] = [];
    let finished = 0;
    const r = await pSigmoidSearch({ budget: B, dims: LLAVA_7B, evaluate, seed: 0, statePath, outputPath, progress: { update: (d) => updates.push(d), finish: () => finished++ } });
    assert.equal(r.trials.length, 30);
    assert.ok(calls <= 30 && calls > 5, `evaluations ${calls} (identical rounded schedules are evaluated once)`);
    assert.deepEqual(updates, Array.from({ length: 30 }, (_, i) => i + 1));
    assert.equal(finished, 1);
    assert.equal(r.accuracy, Math.max(...r.trials.map((t) => t.accuracy)));
    assert.equal(r.accuracy, accuracyOf(r.schedule));
    assert.ok(r.accuracy > 0.98, `best accuracy ${r.accuracy}`);
    assert.ok(r.accuracy > Math.max(...r.trials.filter((t) => t.phase === "random").map((t) => t.accuracy)), "the guided trials improve on the random ones");
    assert.ok(Math.abs(r.rMin - 0.06) < 0.01 && Math.abs(r.k - 1.2) < 0.6, `found k ${r.k}, rMin ${r.rMin} (target 1.2, 0.06)`);
    const eq = flopsEquivalentTokens(r.schedule, LLAVA_7B);
    assert.ok(eq <= B && eq > B - 1, `within budget: ${eq}`);
    for (const t of r.trials) assert.ok(t.tokens <= B && t.tokens > B - 1, `trial tokens ${t.tokens}`);
    assert.deepEqual(readSchedule(outputPath), r.schedule);
    assert.equal(r.schedule.meta?.method, "psigmoid");
    // A rerun with the same state replays every evaluation from the file: same result, no model call.
    calls = 0;
    const again = await pSigmoidSearch({ budget: B, dims: LLAVA_7B, evaluate, seed: 0, statePath });
    assert.equal(calls, 0);
    assert.deepEqual(again.trials, r.trials);
    assert.deepEqual(again.schedule, r.schedule);
    // Another seed on the same state file is refused, naming the setting.
    await assert.rejects(pSigmoidSearch({ budget: B, dims: LLAVA_7B, evaluate, seed: 1, statePath }), (e: Error) => e instanceof ConfigError && /seed: the saved search used 0, this run 1/.test(e.message));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  await assert.rejects(pSigmoidSearch({ budget: 576, dims: LLAVA_7B, evaluate, seed: 0 }), /budget: must be between 0 and 576/);
});
