// G-Search (reduce/gsearch.ts) with fake evaluators whose answer is known: accuracy stays at the baseline while every
// layer keeps at least a threshold and drops otherwise, so the search must return the thresholds (or the smallest
// candidate rates above them). Also: tolerance, linear vs binary strategy, resume after an injected interruption,
// progress reporting, settings mismatch, option validation.
import { test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { ConfigError } from "../../core/errors.js";
import { gSearch, gSearchCandidates } from "../../reduce/gsearch.js";
import { readSchedule, type KeepSchedule } from "../../reduce/schedule.js";

const N = 576;
// Layer thresholds (non-increasing, layers 0-1 full): the fewest tokens each layer needs to keep accuracy.
const STRICT = [576, 576, 500, 420, 420, 300, 251, 250, 100, 90, 50, 50];
// A looser set: keeping at least these costs 0.02 accuracy.
const LOOSE = [576, 576, 400, 300, 300, 200, 180, 120, 60, 33, 20, 0];
const L = STRICT.length;

const meets = (s: KeepSchedule, t: readonly number[]) => s.keep.every((k, l) => k >= t[l]!);
/** 0.80 at full; tiny drift with fewer tokens; -0.02 below STRICT but above LOOSE; 0.5 below LOOSE. */
function fakeAccuracy(s: KeepSchedule): number {
  assert.equal(s.keep.length, L);
  const dropped = s.keep.reduce((a, k) => a + (N - k), 0) / (N * L);
  if (meets(s, STRICT)) return 0.8 - 0.001 * dropped;
  if (meets(s, LOOSE)) return 0.78 - 0.001 * dropped;
  return 0.5;
}

function counting() {
  const seen: string[] = [];
  return { seen, evaluate: async (s: KeepSchedule) => (seen.push(s.keep.join(",")), fakeAccuracy(s)) };
}

test("gSearch finds the per-layer thresholds (binary, every token count) within the tolerance", async () => {
  const c = counting();
  const s = await gSearch({ numLayers: L, numVisual: N, evaluate: c.evaluate, tolerance: 0.005 });
  assert.deepEqual(s.keep, STRICT);
  assert.equal(s.meta?.method, "gsearch");
  assert.equal(s.meta?.baseline, 0.8);
  assert.equal(s.meta?.accuracy, fakeAccuracy(s));
  // ~log2(N) per layer, never the full count of candidates.
  assert.ok(c.seen.length < 10 * 11, `evaluations ${c.seen.length}`);
  assert.equal(new Set(c.seen).size, c.seen.length, "no schedule is evaluated twice");
  // Every evaluated schedule is monotone with layers 0-1 full, and deeper layers are tied to the searched one.
  for (const k of c.seen.map((x) => x.split(",").map(Number))) {
    assert.equal(k[0], N);
    assert.equal(k[1], N);
    for (let l = 1; l < L; l++) assert.ok(k[l]! <= k[l - 1]!);
  }
  // A tolerance of 0.03 accepts the 0.02 drop: the looser thresholds.
  const loose = await gSearch({ numLayers: L, numVisual: N, evaluate: counting().evaluate, tolerance: 0.03 });
  assert.deepEqual(loose.keep, LOOSE);
  // Tolerance 0: the 0.001·dropped drift is itself a drop, so no token can go.
  const zero = await gSearch({ numLayers: L, numVisual: N, evaluate: counting().evaluate, tolerance: 0 });
  assert.deepEqual(zero.keep, Array(L).fill(N));
  // Tolerance 0 with a flat evaluator: equal accuracy counts as "without degrading".
  const flat = await gSearch({ numLayers: L, numVisual: N, evaluate: async (x) => (meets(x, STRICT) ? 0.8 : 0.5), tolerance: 0 });
  assert.deepEqual(flat.keep, STRICT);
});

test("gSearch with candidate rates returns the smallest candidate count above each threshold; linear = binary", async () => {
  const rates = [1, 0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.15, 0.1, 0.05, 0];
  const counts = rates.map((r) => Math.round(r * N));
  const expected = STRICT.map((t) => Math.min(...counts.filter((c) => c >= t)));
  const bin = counting();
  const a = await gSearch({ numLayers: L, numVisual: N, evaluate: bin.evaluate, tolerance: 0.005, rates });
  assert.deepEqual(a.keep, expected);
  const lin = counting();
  const b = await gSearch({ numLayers: L, numVisual: N, evaluate: lin.evaluate, tolerance: 0.005, rates, strategy: "linear" });
  assert.deepEqual(b.keep, expected);
  const full = counting();
  await gSearch({ numLayers: L, numVisual: N, evaluate: full.evaluate, tolerance: 0.005, strategy: "linear" });
  assert.ok(full.seen.length > 4 * bin.seen.length, `linear over every count ${full.seen.length} vs binary over rates ${bin.seen.length}`);
  assert.deepEqual(gSearchCandidates(300, N, [1, 0.5, 0.25, 0.1]), [300, 288, 144, 58]);
  assert.deepEqual(gSearchCandidates(3, N), [3, 2, 1, 0]);
});

test("gSearch resumes after an interruption from its state file: same result, no evaluation repeated", async () => {
  const dir = mkdtempSync(path.join(tmpdir(), "vzt-gsearch-"));
  try {
    const reference = counting();
    const want = await gSearch({ numLayers: L, numVisual: N, evaluate: reference.evaluate, tolerance: 0.005 });
    const statePath = path.join(dir, "state", "gsearch.json");
    const outputPath = path.join(dir, "schedule.json");
    let done = 0;
    const crashing = async (s: KeepSchedule) => {
      if (done === 37) throw new Error("injected interruption");
      done++;
      return fakeAccuracy(s);
    };
    await assert.rejects(gSearch({ numLayers: L, numVisual: N, evaluate: crashing, tolerance: 0.005, statePath, outputPath }), /injected interruption/);
    assert.ok(existsSync(statePath) && !existsSync(outputPath));
    const saved = JSON.parse(readFileSync(statePath, "utf8")) as { state: { keep: number[] }; evaluations: Record<string, number> };
    assert.equal(Object.keys(saved.evaluations).length, 37, "every finished evaluation was saved");
    assert.ok(saved.state.keep.length > 2 && saved.state.keep.length < L, `decided layers saved: ${saved.state.keep}`);
    assert.deepEqual(saved.state.keep, want.keep.slice(0, saved.state.keep.length));
    const rest = counting();
    const got = await gSearch({ numLayers: L, numVisual: N, evaluate: rest.evaluate, tolerance: 0.005, statePath, outputPath });
    assert.deepEqual(got.keep, want.keep);
    assert.equal(37 + rest.seen.length, reference.seen.length, "the rerun only evaluates what the first run had not");
    assert.deepEqual(readSchedule(outputPath).keep, want.keep);
    // A finished state: a third run evaluates nothing.
    const third = counting();
    assert.deepEqual((await gSearch({ numLayers: L, numVisual: N, evaluate: third.evaluate, tolerance: 0.005, statePath })).keep, want.keep);
    assert.equal(third.seen.length, 0);
    // Other settings on the same state are refused, naming the setting.
    await assert.rejects(
      gSearch({ numLayers: L, numVisual: N, evaluate: third.evaluate, tolerance: 0.01, statePath }),
      (e: Error) => e instanceof ConfigError && /tolerance: the saved search used 0.005, this run 0.01/.test(e.message) && e.message.includes(statePath),
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("gSearch reports progress: one step per searched layer, then finish", async () => {
  const updates: [number, string | undefined][] = [];
  const finishes: (string | undefined)[] = [];
  await gSearch({
    numLayers: L,
    numVisual: N,
    evaluate: counting().evaluate,
    tolerance: 0.005,
    progress: { update: (d, extra) => updates.push([d, extra]), finish: (extra) => finishes.push(extra) },
  });
  assert.deepEqual(updates.map(([d]) => d), Array.from({ length: L - 1 }, (_, i) => i));
  assert.match(updates[0]![1]!, /baseline 0.8000/);
  assert.match(updates[1]![1]!, /layer 2: keep 500/);
  assert.equal(finishes.length, 1);
  assert.match(finishes[0]!, /accuracy 0.7\d+ \(baseline 0.8000\)/);
});

test("gSearch validates its options, naming the key", async () => {
  const evaluate = counting().evaluate;
  const bad = (o: Partial<Parameters<typeof gSearch>[0]>, re: RegExp) =>
    assert.rejects(gSearch({ numLayers: L, numVisual: N, evaluate, tolerance: 0, ...o }), (e: Error) => e instanceof ConfigError && re.test(e.message));
  await bad({ rates: [1, 0.5, 0.7] }, /gsearch.rates\[2\]: rates must be strictly descending/);
  await bad({ rates: [1.5] }, /gsearch.rates\[0\]: must be in \[0, 1\]/);
  await bad({ tolerance: -1 }, /gsearch.tolerance/);
  await bad({ numLayers: 2 }, /gsearch.numLayers/);
  await bad({ strategy: "golden" as "binary" }, /gsearch.strategy/);
  await assert.rejects(gSearch({ numLayers: L, numVisual: N, evaluate: async () => NaN, tolerance: 0 }), /evaluate returned NaN/);
});
