// Keep schedules (reduce/schedule.ts): validation errors name the layer, JSON round trip, FLOPs accounting against the
// FastV formula written out by hand, and FLOPs-equivalent tokens (known answers: constant schedules, the full schedule).
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { ConfigError } from "../../core/errors.js";
import { flopsEquivalentTokens, fullSchedule, readSchedule, scheduleFlops, uniformFlops, validateSchedule, writeSchedule, type FlopsDims, type KeepSchedule } from "../../reduce/schedule.js";

const LLAVA_7B: FlopsDims = { numLayers: 32, numVisual: 576, textTokens: 40, hidden: 4096, intermediate: 11008 };

const good = (): KeepSchedule => ({ numLayers: 6, numVisual: 10, keep: [10, 10, 8, 8, 3, 0], meta: { method: "hand" } });
const rejects = (s: unknown, ...res: RegExp[]) =>
  assert.throws(
    () => validateSchedule(s, "sched.json"),
    (e: Error) => e instanceof ConfigError && res.every((re) => re.test(e.message)) && /sched\.json/.test(e.message),
  );

test("validateSchedule accepts a monotone schedule with layers 0-1 full and returns a copy", () => {
  const s = good();
  const v = validateSchedule(s);
  assert.deepEqual(v, s);
  v.keep[2] = 1;
  assert.equal(s.keep[2], 8, "the result does not alias the input");
  assert.deepEqual(fullSchedule(4, 7).keep, [7, 7, 7, 7]);
  validateSchedule(fullSchedule(4, 7));
});

test("validateSchedule errors name the layer at fault", () => {
  rejects({ ...good(), keep: [10, 9, 8, 8, 3, 0] }, /keep\[1\] \(layer 1\).*never reduced.*must be 10, got 9/);
  rejects({ ...good(), keep: [10, 10, 8, 9, 3, 0] }, /keep\[3\] \(layer 3\): keeps 9 tokens, more than layer 2's 8 \(keep must be non-increasing\)/);
  rejects({ ...good(), keep: [10, 10, 8, 8, 3.5, 0] }, /keep\[4\] \(layer 4\): must be an integer in \[0, 10\], got 3.5/);
  rejects({ ...good(), keep: [10, 10, 8, 8, 3, -1] }, /keep\[5\] \(layer 5\)/);
  rejects({ ...good(), keep: [10, 10, 11, 8, 3, 0] }, /keep\[2\] \(layer 2\): must be an integer in \[0, 10\]/);
  rejects({ ...good(), keep: [10, 10, 8] }, /keep: has 3 entries, numLayers is 6/);
  rejects({ numLayers: 2, numVisual: 0, keep: [] }, /numLayers: must be an integer >= 3/, /numVisual: must be an integer >= 1/);
  rejects([1, 2], /expected an object/);
  // Every problem at once.
  rejects({ ...good(), keep: [9, 10, 8, 9, 3, 4] }, /keep\[0\] \(layer 0\)/, /keep\[3\] \(layer 3\)/, /keep\[5\] \(layer 5\)/);
});

test("writeSchedule / readSchedule round trip, and read errors name the file and layer", () => {
  const dir = mkdtempSync(path.join(tmpdir(), "vzt-schedule-"));
  try {
    const file = path.join(dir, "sub", "gsearch.json");
    const s: KeepSchedule = { numLayers: 32, numVisual: 576, keep: [576, 576, ...Array.from({ length: 30 }, (_, i) => 500 - 15 * i)], meta: { method: "gsearch", tolerance: 0.01 } };
    writeSchedule(file, s);
    assert.deepEqual(readSchedule(file), s);
    const bad = path.join(dir, "bad.json");
    writeFileSync(bad, JSON.stringify({ format: "vzt-keep-schedule", version: 1, numLayers: 3, numVisual: 4, keep: [4, 4, 5] }));
    assert.throws(() => readSchedule(bad), (e: Error) => e instanceof ConfigError && /bad\.json/.test(e.message) && /keep\[2\] \(layer 2\)/.test(e.message));
    writeFileSync(bad, "{ not json");
    assert.throws(() => readSchedule(bad), (e: Error) => e instanceof ConfigError && /bad\.json/.test(e.message) && /cannot read keep schedule/.test(e.message));
    writeFileSync(bad, JSON.stringify({ format: "other", numLayers: 3, numVisual: 4, keep: [4, 4, 4] }));
    assert.throws(() => readSchedule(bad), /format: expected "vzt-keep-schedule"/);
    assert.throws(() => writeSchedule(path.join(dir, "w.json"), { numLayers: 3, numVisual: 4, keep: [4, 3, 3] }), /keep\[1\] \(layer 1\)/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("scheduleFlops = Σ_l (4nd² + 2n²d + 3ndm), n = text + keep[l]", () => {
  const s: KeepSchedule = { numLayers: 4, numVisual: 576, keep: [576, 576, 200, 64] };
  const dims: FlopsDims = { numLayers: 4, numVisual: 576, textTokens: 40, hidden: 4096, intermediate: 11008 };
  const d = 4096;
  const m = 11008;
  let want = 0;
  for (const k of s.keep) {
    const n = 40 + k;
    want += 4 * n * d * d + 2 * n * n * d + 3 * n * d * m;
  }
  assert.equal(scheduleFlops(s, dims), want);
  assert.equal(uniformFlops(100, dims), 4 * (4 * 140 * d * d + 2 * 140 * 140 * d + 3 * 140 * d * m));
  assert.throws(() => scheduleFlops({ keep: [1, 2, 3] }, dims), /schedule has 3 layers, the model has 4/);
});

test("flopsEquivalentTokens: constant schedules give their count, the full schedule gives N, and FLOPs match", () => {
  for (const B of [0, 64, 128, 192, 576]) {
    const eq = flopsEquivalentTokens({ keep: Array(32).fill(B) }, LLAVA_7B);
    assert.ok(Math.abs(eq - B) < 1e-9, `constant ${B}: ${eq}`);
  }
  const s: KeepSchedule = { numLayers: 32, numVisual: 576, keep: [576, 576, ...Array.from({ length: 30 }, (_, i) => Math.max(0, 400 - 20 * i))] };
  const eq = flopsEquivalentTokens(s, LLAVA_7B);
  const rel = Math.abs(uniformFlops(eq, LLAVA_7B) - scheduleFlops(s, LLAVA_7B)) / scheduleFlops(s, LLAVA_7B);
  assert.ok(rel < 1e-12, `uniform FLOPs at the equivalent budget match (rel ${rel})`);
  const mean = s.keep.reduce((a, k) => a + k, 0) / 32;
  // F is convex in n, so the equivalent budget lies between the mean and the maximum count (Jensen).
  assert.ok(eq > mean && eq < 576, `mean ${mean} < ${eq} < 576`);
});
