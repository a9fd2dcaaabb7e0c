// `vzt gsearch` / `vzt psigmoid` library functions on a 4-layer tiny LLaVA (makeTiny llmLayers: 4) and a tiny shapes
// split: the search evaluator predicts exactly what `vzt eval` predicts for the same cell; G-Search writes a valid
// schedule that `vzt eval` runs as gsearch@<file>; an interrupted search resumes from its state without re-running
// cached evaluations and ends with the same schedule; P-Sigmoid writes a FLOPs-matched schedule; no tensor is left.
import assert from "node:assert/strict";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, test } from "node:test";
import { evalConfigFromObject, type EvalConfig } from "../../configs/eval_schema.js";
import { tf } from "../../core/backend.js";
import { makeShapesData } from "../../data/make_data.js";
import { buildCell, parseGridCell } from "../../eval/grid.js";
import { runEval } from "../../eval/recipe.js";
import { readItemLog } from "../../eval/results.js";
import { openSearchEvaluator, runGSearch, runPSigmoid, SearchInterrupted } from "../../eval/search.js";
import { makeTiny, tinyLlamaDraws } from "../../models/make_tiny.js";
import { FULL_LAYERS, flopsEquivalentTokens, fullSchedule, readSchedule, writeSchedule } from "../../reduce/schedule.js";

const LAYERS = 4;
const root = mkdtempSync(path.join(tmpdir(), "vzt-search-"));
after(() => rmSync(root, { recursive: true, force: true }));
const tiny = path.join(root, "tiny");
const shapes = path.join(root, "shapes");
await makeTiny(tiny, { llmLayers: LAYERS });
await makeShapesData({ out: shapes, train: 1, evalVqa: 6, evalPope: 2 });

const config = (out: string, over: Record<string, unknown> = {}, search: Record<string, unknown> = {}): EvalConfig =>
  evalConfigFromObject({
    output_dir: path.join(root, out),
    model: { llava: path.join(tiny, "llava") },
    benchmarks: [{ name: "shapes_vqav2", data: path.join(shapes, "eval_vqav2") }],
    grid: ["none@576"],
    batch_size: 3,
    max_new_tokens: 2,
    limit: 3,
    warmup: false,
    runtime: { backend: "wasm" },
    search: { limit: 3, rates: [0.5, 0.1], ...search },
    ...over,
  });

test("make-tiny llmLayers: a deeper LLM whose first layers draw the same tensors as the default one", () => {
  const llm = JSON.parse(readFileSync(path.join(tiny, "llm", "config.json"), "utf8")) as { num_hidden_layers: number };
  assert.equal(llm.num_hidden_layers, LAYERS);
  const deep = tinyLlamaDraws(50, LAYERS);
  const base = tinyLlamaDraws(50);
  for (const [name, d] of Object.entries(base)) assert.deepEqual(deep[name], d, name);
  assert.ok(deep["model.layers.3.mlp.down_proj.weight"] && !base["model.layers.2.mlp.down_proj.weight"]);
  return assert.rejects(makeTiny(path.join(root, "bad"), { llmLayers: 0 }), /llmLayers must be an integer in \[1, 64\], got 0/);
});

test("the search evaluator predicts what vzt eval predicts for the same cells", async () => {
  const file = path.join(root, "hand.json");
  writeSchedule(file, { numLayers: LAYERS, numVisual: 576, keep: [576, 576, 200, 60] });
  const cfg = config("eval-same", { grid: ["none@576", `gsearch@${file}`, "fastv@64"], limit: 4 }, { limit: 4 });
  const summary = await runEval(cfg, { quiet: true });
  assert.equal(summary.failed, 0);
  const { records } = readItemLog(path.join(cfg.output_dir, "items.jsonl"));
  const predicted = (cell: string) => records.filter((r) => r.cell === cell).sort((a, b) => a.index - b.index).map((r) => r.prediction);

  const tensors = tf.memory().numTensors;
  const ev = await openSearchEvaluator(cfg, { quiet: true });
  try {
    assert.equal(ev.items, 4);
    assert.equal(ev.numLayers, LAYERS);
    assert.equal(ev.numVisual, 576);
    assert.equal(ev.benchmark, "shapes_vqav2");
    const full = await ev.score(undefined);
    const sched = await ev.score(buildCell(parseGridCell(`gsearch@${file}`), { patches: 576, seed: 0 }).inLlm);
    const fastv = await ev.score(buildCell(parseGridCell("fastv@64"), { patches: 576, seed: 0, llm: { layers: LAYERS, hidden: 128, intermediate: 344 } }).inLlm);
    assert.deepEqual(full.predictions, predicted("none@576"));
    assert.deepEqual(sched.predictions, predicted(`gsearch@${file}`));
    assert.deepEqual(fastv.predictions, predicted("fastv@64"));
    assert.notDeepEqual(full.predictions, sched.predictions, "the schedule changes what the model says (else this test could not tell cells apart)");
    const results = summary.results!.results;
    assert.equal(full.accuracy, results["none@576"]!.shapes_vqav2!.score);
    assert.equal(sched.accuracy, results[`gsearch@${file}`]!.shapes_vqav2!.score);
    assert.equal(await ev.evaluate(fullSchedule(LAYERS, 576)), full.accuracy);
    assert.equal(await ev.evaluate(readSchedule(file)), sched.accuracy);
    assert.equal(ev.evaluations, 5);
    // text tokens: the prompt minus the image placeholder, as the eval log has them
    const text = records.filter((r) => r.cell === "none@576").map((r) => r.prompt_tokens - 576);
    assert.equal(ev.textTokens, Math.round(text.reduce((a, b) => a + b, 0) / text.length));
  } finally {
    ev.dispose();
  }
  assert.equal(tf.memory().numTensors, tensors, "the evaluator leaves no tensor behind once disposed");
});

test("runGSearch writes a schedule vzt eval runs as gsearch@<file>; an interrupted search resumes from its state", async () => {
  const cfg = config("gs");
  const a = await runGSearch(cfg, { quiet: true });
  assert.equal(a.output, path.join(cfg.output_dir, "gsearch.json"));
  assert.equal(a.state, path.join(cfg.output_dir, "gsearch.state.json"));
  const s = readSchedule(a.output);
  assert.deepEqual(s.keep, a.schedule.keep);
  assert.equal(s.keep.length, LAYERS);
  assert.ok(s.keep.slice(0, FULL_LAYERS).every((k) => k === 576));
  // candidates are 576 and round(rate x 576) = 288, 58 only
  assert.ok(s.keep.slice(FULL_LAYERS).every((k) => [576, 288, 58].includes(k)), `keep ${s.keep}`);
  const meta = s.meta as { method: string; evaluations: number; baseline: number; accuracy: number; metric: string; search: { benchmark: string; limit: number } };
  assert.equal(meta.method, "gsearch");
  assert.equal(meta.metric, "accuracy");
  assert.equal(meta.search.benchmark, "shapes_vqav2");
  assert.equal(meta.search.limit, 3);
  assert.equal(a.evaluated, meta.evaluations, "a fresh search runs every evaluation it records");
  assert.ok(a.accuracy >= a.baseline - cfg.search.tolerance);
  assert.ok(a.evaluated >= 2);

  // Interrupted after one model evaluation, then resumed: the cached one is not run again; same schedule.
  const cfgB = config("gs-resume");
  await assert.rejects(runGSearch(cfgB, { quiet: true, stopAfterEvaluations: 1 }), SearchInterrupted);
  const saved = JSON.parse(readFileSync(path.join(cfgB.output_dir, "gsearch.state.json"), "utf8")) as { evaluations: Record<string, number> };
  assert.equal(Object.keys(saved.evaluations).length, 1);
  assert.ok(!existsSync(path.join(cfgB.output_dir, "gsearch.json")));
  const b = await runGSearch(cfgB, { quiet: true });
  assert.equal(b.evaluated, a.evaluated - 1);
  assert.deepEqual(b.schedule.keep, a.schedule.keep);
  assert.equal(b.accuracy, a.accuracy);
  // A finished search reruns from its state alone.
  assert.equal((await runGSearch(cfgB, { quiet: true })).evaluated, 0);
  // Another search context (limit) is refused naming the key, not silently reused.
  await assert.rejects(runGSearch(config("gs-resume", {}, { limit: 2 }), { quiet: true }), /limit: the saved search state .* was made with 3, this run has 2/);

  // vzt eval accepts the file as a grid cell and runs it.
  const cell = `gsearch@${a.output}`;
  const ev = await runEval(config("gs-eval", { grid: [cell], limit: 2 }), { quiet: true });
  assert.equal(ev.failed, 0);
  assert.equal(ev.results!.results[cell]!.shapes_vqav2!.n, 2);
});

test("runPSigmoid (2 random + 1 guided trials) writes a FLOPs-matched schedule", async () => {
  // A 4-layer LLM spends half its FLOPs in the two unreduced layers: budgets below ~350 tokens cannot be met.
  const cfg = config("ps", {}, { random_trials: 2, guided_trials: 1, budget: 300 });
  await assert.rejects(runPSigmoid(cfg, undefined, { quiet: true }), /budget: 300 equivalent tokens cannot be met/);
  const r = await runPSigmoid(cfg, 450, { quiet: true });
  assert.equal(r.output, path.join(cfg.output_dir, "psigmoid-450.json"));
  assert.equal(r.trials.length, 3);
  assert.equal(r.evaluated, 3);
  const s = readSchedule(r.output);
  const meta = s.meta as { method: string; budget: number; textTokens: number; flopsEquivalentTokens: number; k: number };
  assert.equal(meta.method, "psigmoid");
  assert.equal(meta.budget, 450);
  assert.equal(meta.k, r.k);
  const dims = { numLayers: LAYERS, numVisual: 576, textTokens: meta.textTokens, hidden: 128, intermediate: 344 };
  const eq = flopsEquivalentTokens(s, dims);
  assert.ok(eq <= 450 && eq > 449, `FLOPs-equivalent tokens ${eq}`);
  assert.ok(s.keep[LAYERS - 1]! < 576, "the schedule reduces");
  assert.deepEqual(parseGridCell(`psigmoid@${r.output}`).method, "psigmoid");
  await assert.rejects(runPSigmoid(config("ps", {}, { random_trials: 2, guided_trials: 1 }), undefined, { quiet: true }), /search\.budget: missing: give --budget B/);
});
