// lrAt: known values of HF transformers' get_{cosine,linear,constant}_schedule_with_warmup and
// get_cosine_with_min_lr_schedule_with_warmup (lr_lambda restated in float64 here), warmup_ratio -> ceil.
import { test } from "node:test";
import assert from "node:assert/strict";
import { lrAt, warmupStepsFor, type ScheduleOptions } from "../../train/schedule.js";

const close = (a: number, b: number, what: string) => assert.ok(Math.abs(a - b) <= 1e-15 + 1e-12 * Math.abs(b), `${what}: ${a} vs ${b}`);

test("cosine, total 100, warmup 3: known values", () => {
  const o: ScheduleOptions = { baseLr: 2e-3, totalSteps: 100, warmupSteps: 3, name: "cosine" };
  assert.equal(lrAt(0, o), 0, "first update uses lr_lambda(0) = 0 (HF)");
  close(lrAt(1, o), 2e-3 / 3, "step 1");
  close(lrAt(2, o), (2 * 2e-3) / 3, "step 2");
  assert.equal(lrAt(3, o), 2e-3, "end of warmup: cos(0) = 1");
  close(lrAt(100, o), 0, "end");
  // midpoint of the decay: progress 0.5 at step 3 + 97/2 = 51.5 -> 51 and 52 straddle lr/2
  close(lrAt(51, o), 2e-3 * 0.5 * (1 + Math.cos((Math.PI * 48) / 97)), "step 51");
  close(lrAt(52, o), 2e-3 * 0.5 * (1 + Math.cos((Math.PI * 49) / 97)), "step 52");
  assert.ok(lrAt(51, o) > 1e-3 && lrAt(52, o) < 1e-3);
  // literal values, computed with python's math.cos
  close(lrAt(10, o), 0.001974410524646926, "step 10");
  close(lrAt(99, o), 5.244309544850667e-7, "step 99");
  assert.equal(lrAt(150, o), lrAt(100, o), "past the end stays at the end value");
});

test("even midpoint is exactly lr/2, and warmup 0 starts at the full lr", () => {
  const o: ScheduleOptions = { baseLr: 1, totalSteps: 10, name: "cosine" };
  assert.equal(lrAt(0, o), 1);
  close(lrAt(5, o), 0.5, "midpoint");
  close(lrAt(10, o), 0, "end");
});

test("warmup_ratio uses HF's ceil(total * ratio); warmupSteps > 0 wins", () => {
  assert.equal(warmupStepsFor({ totalSteps: 100, warmupRatio: 0.03 }), 3);
  assert.equal(warmupStepsFor({ totalSteps: 2181, warmupRatio: 0.03 }), 66, "LLaVA-1.5 pretrain: ceil(65.43)");
  assert.equal(warmupStepsFor({ totalSteps: 10, warmupRatio: 0.01 }), 1);
  assert.equal(warmupStepsFor({ totalSteps: 10 }), 0);
  assert.equal(warmupStepsFor({ totalSteps: 100, warmupSteps: 7, warmupRatio: 0.5 }), 7);
  assert.equal(warmupStepsFor({ totalSteps: 100, warmupSteps: 0, warmupRatio: 0.5 }), 50);
  const o: ScheduleOptions = { baseLr: 1e-3, totalSteps: 100, warmupRatio: 0.03, name: "cosine" };
  close(lrAt(1, o), 1e-3 / 3, "ratio 0.03 -> warmup 3");
  assert.equal(lrAt(3, o), 1e-3);
});

test("linear and constant with warmup", () => {
  const lin: ScheduleOptions = { baseLr: 1, totalSteps: 10, warmupSteps: 2, name: "linear" };
  assert.deepEqual([0, 1, 2, 6, 10].map((s) => lrAt(s, lin)), [0, 0.5, 1, 0.5, 0]);
  const con: ScheduleOptions = { baseLr: 1, totalSteps: 10, warmupSteps: 4, name: "constant" };
  assert.deepEqual([0, 1, 4, 9, 10].map((s) => lrAt(s, con)), [0, 0.25, 1, 1, 1]);
});

test("minLrRatio: HF min_lr_rate, factor * (1 - r) + r", () => {
  const o: ScheduleOptions = { baseLr: 1, totalSteps: 10, warmupSteps: 0, name: "cosine", minLrRatio: 0.1 };
  close(lrAt(10, o), 0.1, "floor");
  close(lrAt(5, o), 0.55, "midpoint");
  close(lrAt(0, o), 1, "start");
});

test("bad options name the option", () => {
  const o: ScheduleOptions = { baseLr: 1, totalSteps: 10, name: "cosine" };
  assert.throws(() => lrAt(-1, o), /step: expected an integer >= 0/);
  assert.throws(() => lrAt(1.5, o), /step/);
  assert.throws(() => lrAt(0, { ...o, totalSteps: 0 }), /totalSteps/);
  assert.throws(() => lrAt(0, { ...o, warmupRatio: 2 }), /warmupRatio/);
  assert.throws(() => lrAt(0, { ...o, name: "poly" as "cosine" }), /unknown schedule "poly"; valid: cosine, linear, constant/);
});
