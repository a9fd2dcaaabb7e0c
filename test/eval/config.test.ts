// Eval config schema and the pure parts of the harness: the schema's name lists agree with the registries, the
// shipped eval configs validate, grid cells parse, and results / comparison arithmetic on hand-made records.
import assert from "node:assert/strict";
import { readdirSync } from "node:fs";
import path from "node:path";
import { test } from "node:test";
import { BENCHMARK_NAMES, evalConfigFromObject, GRID_METHOD_NAMES, loadEvalConfig } from "../../configs/eval_schema.js";
import { buildResults, type EvalMeta } from "../../eval/aggregate.js";
import { BENCHMARKS } from "../../eval/benchmarks/registry.js";
import { pyCapitalize } from "../../eval/benchmarks/textvqa.js";
import { mme } from "../../eval/benchmarks/mme.js";
import { scienceqa } from "../../eval/benchmarks/scienceqa.js";
import { compareResults } from "../../eval/compare.js";
import { GRID_METHODS, parseGrid, parseGridCell } from "../../eval/grid.js";
import { niceTicks } from "../../eval/plots.js";
import type { ItemRecord } from "../../eval/results.js";
import { repoRoot } from "../helpers.js";

test("schema name lists match the registries", () => {
  assert.deepEqual([...BENCHMARK_NAMES].sort(), Object.keys(BENCHMARKS).sort());
  assert.deepEqual([...GRID_METHOD_NAMES].sort(), Object.keys(GRID_METHODS).sort());
});

test("every shipped eval config validates (paths unchecked: they name data the user fills in)", () => {
  const dir = path.join(repoRoot(), "configs", "eval");
  const files = readdirSync(dir).filter((f) => f.endsWith(".yaml"));
  assert.ok(files.includes("demo.yaml") && files.includes("llava-1.5-7b-budgets.yaml"));
  for (const f of files) {
    const c = loadEvalConfig(path.join(dir, f), { checkPaths: false, cwd: repoRoot() });
    assert.ok(c.grid.length >= 2 && c.benchmarks.length >= 1, f);
  }
  const paper = loadEvalConfig(path.join(dir, "llava-1.5-7b-budgets.yaml"), { checkPaths: false, sets: ["benchmarks.1.limit=7", "benchmarks[2].split=test"] });
  assert.deepEqual(paper.grid, ["none@576", "visionzip@192", "visionzip@128", "visionzip@64"]);
  assert.deepEqual(paper.benchmarks.map((b) => b.name), ["gqa", "mme", "pope", "scienceqa", "vqav2", "textvqa"]);
  assert.equal(paper.benchmarks[1]!.limit, 7);
  assert.equal(paper.benchmarks[2]!.split, "test");
  assert.throws(() => loadEvalConfig(path.join(dir, "demo.yaml"), { checkPaths: false, sets: ["benchmarks.9.limit=1"] }), /benchmarks\[9\]: no such list item/);
});

test("grid cells: method@budget, unknown methods listed, duplicates refused", () => {
  assert.deepEqual(parseGridCell(" visionzip @ 064 "), { key: "visionzip@64", method: "visionzip", budget: 64 });
  assert.throws(() => parseGridCell("fastvv@64"), /unknown method "fastvv"; valid: none, visionzip, uniform, pool, random, fastv, topv, psigmoid, gsearch/);
  assert.throws(() => parseGridCell("visionzip64"), /not method@budget/);
  assert.throws(() => parseGrid(["none@576", "none@576"]), /listed twice/);
  assert.throws(() => GRID_METHODS.none!.build(64, { patches: 576, seed: 0 }, "none@64"), /budget must be 576/);
  assert.throws(() => GRID_METHODS.visionzip!.build(600, { patches: 576, seed: 0 }, "visionzip@600"), /exceeds the 576 patch tokens/);
});

test("lmms-eval prompts: TextVQA capitalize, MME drops the yes/no request, ScienceQA options and context", () => {
  assert.equal(pyCapitalize("what is WRITTEN here?"), "What is written here?");
  const where = { shard: 0, file: "x.arrow", batch: 0, row: 3 };
  const img = { bytes: new Uint8Array([1]), path: "a.png" };
  const m = mme.toItem({ question_id: "code/1.png", question: " Is it red? Please answer yes or no.", answer: "Yes", category: "color", image: img }, { benchmark: "mme", where });
  assert.equal(m.prompt, "Is it red?\nAnswer the question using a single word or phrase.");
  const s = scienceqa.toItem({ question: "Which is a mammal?", choices: ["cat", "trout"], answer: 0, hint: "Look.", image: img }, { benchmark: "scienceqa", where });
  assert.equal(s.prompt, "Context: Look.\nWhich is a mammal?\nA. cat\nB. trout\nAnswer with the option's letter from the given choices directly.");
  assert.equal(s.target, "A");
  assert.throws(() => scienceqa.toItem({ question: "q", choices: ["a"], answer: 3, hint: "", image: img }, { benchmark: "scienceqa", where }), /benchmark scienceqa \(shard 0\): answer must be an index.*x\.arrow, batch 0, row 3|x\.arrow, batch 0, row 3.*answer must be an index/);
});

const rec = (cell: string, benchmark: string, index: number, score: Record<string, number | string>, prefill: number, failed?: string): ItemRecord => ({
  cell, benchmark, index, id: String(index), prompt: "", target: "", prediction: failed ? "" : "x", score, ...(failed ? { failed } : {}),
  visual_tokens: cell.startsWith("none") ? 576 : 64, prompt_tokens: 600, new_tokens: 1, tower_ms: 10, reducer_ms: cell.startsWith("none") ? 0.5 : 1, prefill_ms: prefill,
  decode_ms_per_token: null, kv_cache_bytes: 1000, prefill_flops: 5,
});

test("results: accuracy, % of full, prefill speedup and median timings from hand-made records", () => {
  const meta: EvalMeta = {
    config: {}, config_hash: "h", versions: {}, backend: "cpu", baseline: "none@576", model: {},
    grid: [{ key: "none@576", method: "none", budget: 576 }, { key: "visionzip@64", method: "visionzip", budget: 64 }],
    benchmarks: [{ name: "shapes_vqav2", primary: "accuracy", items: 4 }],
  };
  const records = [
    ...[1, 1, 0.6, 0].map((a, i) => rec("none@576", "shapes_vqav2", i, { accuracy: a }, [40, 40, 20, 100][i]!)),
    ...[1, 0.3, 0.3, 0].map((a, i) => rec("visionzip@64", "shapes_vqav2", i, { accuracy: a }, 10, i === 3 ? "generate: boom" : undefined)),
  ];
  const r = buildResults(meta, records, "2020-01-01");
  assert.ok(Math.abs(r.results["none@576"]!.shapes_vqav2!.score - 65) < 1e-9);
  assert.ok(Math.abs(r.results["visionzip@64"]!.shapes_vqav2!.score - 40) < 1e-9);
  assert.ok(Math.abs(r.results["visionzip@64"]!.shapes_vqav2!.relative! - (100 * 40) / 65) < 1e-9);
  assert.equal(r.results["visionzip@64"]!.shapes_vqav2!.failed, 1);
  assert.equal(r.cells["none@576"]!.prefill_ms, 40); // median of 20, 40, 40, 100
  assert.equal(r.cells["visionzip@64"]!.prefill_speedup, 4);
  assert.equal(r.cells["visionzip@64"]!.reducer_overhead, 0.1);
  assert.equal(r.cells["none@576"]!.average_relative, 100);

  const b = structuredClone(r);
  b.results["visionzip@64"]!.shapes_vqav2!.score = 45.5;
  const c = compareResults(r, b);
  const row = c.rows.find((x) => x.cell === "visionzip@64")!;
  assert.equal(row.delta, 5.5);
  assert.match(c.text, /\| visionzip@64 \| shapes_vqav2 \| accuracy \| 40\.00 \| 45\.50 \| \+5\.50 \|/);
});

test("plot ticks are round and cover the data", () => {
  assert.deepEqual(niceTicks(0, 576), [0, 200, 400, 600]);
  assert.deepEqual(niceTicks(55, 75), [55, 60, 65, 70, 75]);
});

test("search section: defaults, the shipped demo-methods search, bad values named by key", () => {
  const base = { output_dir: "out", model: { llava: "m" }, benchmarks: [{ name: "shapes_vqav2", data: "d" }, { name: "shapes_pope", data: "p" }], grid: ["none@576"] };
  const opts = { checkPaths: false };
  const d = evalConfigFromObject(base, opts).search;
  assert.deepEqual(d, { benchmark: null, data: null, split: null, limit: 300, tolerance: 0, rates: null, strategy: "binary", budget: null, seed: null, random_trials: 5, guided_trials: 25, bounds: { k: [0.1, 4], r_min: [0, 0.5] }, text_tokens: null, output: null, state: null });
  const ok = evalConfigFromObject({ ...base, search: { benchmark: "shapes_pope", rates: [0.5, 0.25], strategy: "linear", budget: 64, bounds: { k: [0.5, 2] } } }, opts).search;
  assert.equal(ok.benchmark, "shapes_pope");
  assert.deepEqual(ok.rates, [0.5, 0.25]);
  assert.deepEqual(ok.bounds, { k: [0.5, 2], r_min: [0, 0.5] });
  const demo = loadEvalConfig(path.join(repoRoot(), "configs", "eval", "demo-methods.yaml"), { checkPaths: false, cwd: repoRoot() });
  assert.equal(demo.search.benchmark, "shapes_vqav2");
  assert.equal(demo.model.llava, "checkpoints/tiny-deep/llava");
  for (const m of ["visionzip", "topv", "fastv", "psigmoid"]) for (const b of [192, 128, 64]) assert.ok(demo.grid.includes(`${m}@${b}`), `${m}@${b}`);
  const bad = (search: Record<string, unknown>, re: RegExp) => assert.throws(() => evalConfigFromObject({ ...base, search }, opts), re);
  bad({ benchmark: "gqa" }, /search\.benchmark: "gqa" is not one of benchmarks\[\]\.name \(shapes_vqav2, shapes_pope\)/);
  bad({ benchmark: "shapes" }, /search\.benchmark: expected one of .* or null, got "shapes"/);
  bad({ limit: 0 }, /search\.limit: expected an integer >= 1, got 0/);
  bad({ tolerance: -1 }, /search\.tolerance: expected a non-negative number, got -1/);
  bad({ rates: [0.5, 0.5] }, /search\.rates\[1\]: rates must be strictly descending, got 0\.5 after 0\.5/);
  bad({ rates: [1.5] }, /search\.rates\[0\]: expected a number in \[0, 1\], got 1\.5/);
  bad({ strategy: "bisect" }, /search\.strategy: expected one of binary \| linear, got "bisect"/);
  bad({ budget: 0 }, /search\.budget: expected a positive number or null, got 0/);
  bad({ bounds: { k: [2, 1] } }, /search\.bounds\.k: lower bound 2 is above the upper bound 1/);
  bad({ bounds: { r_min: [0, 1] } }, /search\.bounds\.r_min\[1\]: expected a number in \[0, 1\), got 1/);
  bad({ random_trials: 0 }, /search\.random_trials: expected an integer >= 1, got 0/);
  bad({ budjet: 64 }, /search\.budjet: .*budget/);
});
