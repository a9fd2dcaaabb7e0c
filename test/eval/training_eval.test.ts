// Accuracy during training (issue 4 §2): the training config's eval.benchmarks are scored every
// train.eval_every_steps through the eval harness; the logged score equals what `vzt eval` gives for the checkpoint
// saved at that step with the run's reducer as a grid cell (same items, prompts, generation and metric).
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { evalConfigFromObject } from "../../configs/eval_schema.js";
import { configFromObject } from "../../configs/load.js";
import { setBackend } from "../../core/backend.js";
import { ConfigError } from "../../core/errors.js";
import { makeShapesData } from "../../data/make_data.js";
import { runEval } from "../../eval/recipe.js";
import { accuracyEval } from "../../eval/training_eval.js";
import { makeTiny } from "../../models/make_tiny.js";
import { train } from "../../train/recipe.js";
import { cleanup, setup } from "../../train/setup.js";

let tmp = "";

before(async () => {
  await setBackend("wasm", { quiet: true });
  tmp = await mkdtemp(path.join(tmpdir(), "vzt-train-eval-"));
  await makeTiny(path.join(tmp, "tiny"), { seed: 0 });
  await makeShapesData({ out: path.join(tmp, "shapes"), seed: 0, train: 8, evalVqa: 6, evalPope: 4 });
});

after(async () => {
  await rm(tmp, { recursive: true, force: true });
});

const benchmarks = () => [
  { name: "shapes_vqav2", data: path.join(tmp, "shapes/eval_vqav2") },
  { name: "shapes_pope", data: path.join(tmp, "shapes/eval_pope") },
];

const config = (out: string, evalSection: Record<string, unknown>, opts: { train?: Record<string, unknown>; projector?: string } = {}) =>
  configFromObject(
    {
      output_dir: path.join(tmp, out),
      model: { llava: path.join(tmp, "tiny/llava"), projector: opts.projector ?? null },
      reducer: { name: "visionzip", dominant: 54, contextual: 10 },
      data: { train: path.join(tmp, "shapes/train"), max_length: 256, prefetch: 1 },
      train: { max_steps: 3, micro_batch_size: 2, global_batch_size: 2, eval_every_steps: 2, ...opts.train },
      optimizer: { lr: 3e-3 },
      checkpoint: { every_steps: 1, keep_last: null },
      logging: { every_steps: 1, tensorboard: false, progress: "off" },
      runtime: { backend: "wasm" },
      eval: evalSection,
    },
    { purpose: "train" },
  );

test("eval.benchmarks are scored every eval_every_steps and at the end, equal to vzt eval of that step's checkpoint", async () => {
  const cfg = config("run", { benchmarks: benchmarks(), limit: 5, batch_size: 2, max_new_tokens: 3 });
  const run = await setup(cfg, { quiet: true });
  let numTensors: number[];
  try {
    numTensors = (await train(run, { periodicEval: accuracyEval(cfg) })).numTensors;
  } finally {
    await cleanup(run);
  }
  // Evaluations happen inside steps 2 and 3 and leave no tensors behind.
  assert.ok(numTensors.every((n) => n === numTensors[0]), `tensor count per step: ${numTensors.join(", ")}`);
  const rows = (await readFile(path.join(cfg.output_dir, "metrics.jsonl"), "utf8")).trim().split("\n").map((l) => JSON.parse(l) as Record<string, number | null>);
  const byStep = new Map(rows.filter((r) => r.step !== null).map((r) => [r.step, r]));
  assert.equal(byStep.get(1)!.eval_shapes_vqav2_accuracy, undefined, "no evaluation at step 1");
  for (const step of [2, 3]) {
    const logged = byStep.get(step)!;
    assert.equal(typeof logged.eval_shapes_vqav2_accuracy, "number", `step ${step}: ${JSON.stringify(logged)}`);
    assert.equal(typeof logged.eval_shapes_pope_f1, "number");
    const ecfg = evalConfigFromObject({
      output_dir: path.join(tmp, `eval-${step}`),
      model: { llava: path.join(tmp, "tiny/llava"), projector: path.join(cfg.output_dir, `step_00000${step}`) },
      benchmarks: benchmarks(),
      grid: ["visionzip@64"],
      batch_size: 2,
      max_new_tokens: 3,
      limit: 5,
      warmup: false,
      runtime: { backend: "wasm" },
    });
    const r = await runEval(ecfg, { quiet: true });
    const results = JSON.parse(await readFile(path.join(r.outputDir, "results.json"), "utf8")) as { results: Record<string, Record<string, { metrics: Record<string, number> }>> };
    const cell = (bench: string, metric: string) => results.results["visionzip@64"]![bench]!.metrics[metric];
    assert.equal(logged.eval_shapes_vqav2_accuracy, cell("shapes_vqav2", "accuracy"), `step ${step}: shapes_vqav2 accuracy`);
    assert.equal(logged.eval_shapes_pope_f1, cell("shapes_pope", "f1"), `step ${step}: shapes_pope f1`);
  }
});

test("train.eval_on_start scores the starting projector at step 0 (as vzt eval does), not again on resume", async () => {
  const evalSection = { benchmarks: benchmarks().slice(0, 1), limit: 5, batch_size: 2, max_new_tokens: 3 };
  // The composite's own projector, so that `vzt eval` with projector: null scores the same weights.
  const cfg = config("on-start", evalSection, { projector: path.join(tmp, "tiny/llava"), train: { eval_on_start: true, eval_every_steps: null, max_steps: 2 } });
  const runTo = async (opts: { resume?: string; stopAt?: number }) => {
    const run = await setup(cfg, { quiet: true, resume: opts.resume });
    try {
      await train(run, { periodicEval: accuracyEval(cfg), stopAt: opts.stopAt });
    } finally {
      await cleanup(run);
    }
  };
  await runTo({ stopAt: 1 });
  await runTo({ resume: "latest" });
  const rows = (await readFile(path.join(cfg.output_dir, "metrics.jsonl"), "utf8")).trim().split("\n").map((l) => JSON.parse(l) as Record<string, number>);
  const evals = rows.filter((r) => "eval_shapes_vqav2_accuracy" in r);
  assert.deepEqual(evals.map((r) => r.step), [0], "one evaluation, at step 0, none after the resume");
  assert.equal(evals[0]!.loss, undefined, "step 0 has no training loss");
  const r = await runEval(
    evalConfigFromObject({ output_dir: path.join(tmp, "eval-start"), model: { llava: path.join(tmp, "tiny/llava"), projector: null }, benchmarks: benchmarks().slice(0, 1), grid: ["visionzip@64"], batch_size: 2, max_new_tokens: 3, limit: 5, warmup: false, runtime: { backend: "wasm" } }),
    { quiet: true },
  );
  assert.equal(evals[0]!.eval_shapes_vqav2_accuracy, r.results!.results["visionzip@64"]!.shapes_vqav2!.metrics.accuracy);
});

test("eval.benchmarks without the harness passed to train() is refused, naming the key and the fix", async () => {
  const cfg = config("refused", { benchmarks: benchmarks().slice(0, 1) });
  const run = await setup(cfg, { quiet: true });
  try {
    await assert.rejects(train(run), (e: unknown) => e instanceof ConfigError && /eval\.benchmarks/.test(e.message) && /accuracyEval/.test(e.message));
  } finally {
    await cleanup(run);
  }
});

test("the eval section is validated: unknown benchmark, duplicate, eval_every_steps with nothing to evaluate", () => {
  assert.throws(() => config("bad1", { benchmarks: [{ name: "shapes_vqa", data: path.join(tmp, "shapes/eval_vqav2") }] }), /eval\.benchmarks\[0\]\.name.*shapes_vqav2/s);
  assert.throws(() => config("bad2", { benchmarks: [...benchmarks().slice(0, 1), ...benchmarks().slice(0, 1)] }), /eval\.benchmarks\[1\]\.name: "shapes_vqav2" is listed twice/);
  assert.throws(() => config("bad3", {}), /train\.eval_every_steps is set, so data\.eval \(held-out loss\) or eval\.benchmarks/);
  assert.throws(() => config("bad4", {}, { train: { eval_every_steps: null, eval_on_start: true } }), /train\.eval_on_start is set, so data\.eval \(held-out loss\) or eval\.benchmarks/);
});
