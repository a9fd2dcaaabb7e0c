// A full tiny eval over two budgets (all report files, known counts and formulas), and resume of an interrupted
// eval: no item scored twice and the same results as the uninterrupted run.
import assert from "node:assert/strict";
import { existsSync, readFileSync } from "node:fs";
import path from "node:path";
import { test } from "node:test";
import type { EvalResults } from "../../eval/aggregate.js";
import { tf } from "../../core/backend.js";
import { runEval } from "../../eval/recipe.js";
import { readItemLog } from "../../eval/results.js";
import { TINY_LLM } from "../../models/make_tiny.js";
import { prefillFlops } from "../../train/dry_run.js";
import { makeEvalFixture, type EvalFixture } from "./fixtures.js";

let fx: EvalFixture;
const fixture = async () => (fx ??= await makeEvalFixture());

const metricsOf = (r: EvalResults) => Object.fromEntries(Object.entries(r.results).map(([c, b]) => [c, Object.fromEntries(Object.entries(b).map(([n, x]) => [n, x.metrics]))]));

test("a tiny eval over none@576 and visionzip@64 writes every report file with the known counts", async () => {
  const f = await fixture();
  const cfg = f.config({ output_dir: path.join(f.root, "full") });
  const tensors = tf.memory().numTensors;
  const s = await runEval(cfg, { quiet: true });
  assert.equal(tf.memory().numTensors, tensors, "runEval leaves no tensor behind");
  assert.equal(s.interrupted, false);
  assert.equal(s.scored, 2 * 2 * 5);
  for (const name of ["results.json", "report.md", "accuracy_vs_tokens.svg", "prefill_vs_tokens.svg", "samples.jsonl", "items.jsonl"]) {
    assert.ok(existsSync(path.join(cfg.output_dir, name)), name);
  }
  const r = JSON.parse(readFileSync(path.join(cfg.output_dir, "results.json"), "utf8")) as EvalResults;
  assert.deepEqual(r.grid, ["none@576", "visionzip@64"]);
  assert.equal(r.baseline, "none@576");
  assert.equal(r.cells["none@576"]!.visual_tokens, 576);
  assert.equal(r.cells["visionzip@64"]!.visual_tokens, 64);
  for (const cell of r.grid) for (const b of r.benchmarks) assert.equal(r.results[cell]![b]!.n, 5);
  assert.equal(r.results["none@576"]!.shapes_pope!.primary, "f1");
  const popeBase = r.results["none@576"]!.shapes_pope!;
  if (popeBase.score > 0) assert.equal(popeBase.relative, 100);
  // Every record: visual tokens + text tokens = prompt tokens, and the KV / FLOP formulas.
  const { records } = readItemLog(path.join(cfg.output_dir, "items.jsonl"));
  assert.equal(records.length, 20);
  const kvPerPos = 2 * TINY_LLM.layers * TINY_LLM.kvHeads * (TINY_LLM.hidden / TINY_LLM.heads) * 4;
  for (const rec of records) {
    assert.equal(rec.visual_tokens, rec.cell === "none@576" ? 576 : 64);
    assert.ok(rec.prompt_tokens > rec.visual_tokens && rec.new_tokens >= 1 && rec.new_tokens <= 3);
    assert.equal(rec.kv_cache_bytes, kvPerPos * (rec.prompt_tokens + rec.new_tokens - 1));
    assert.equal(rec.prefill_flops, prefillFlops(rec.prompt_tokens, TINY_LLM.hidden, TINY_LLM.intermediate, TINY_LLM.layers));
  }
  // The same question costs 512 fewer prompt tokens at 64 than at 576.
  const at = (cell: string) => records.find((x) => x.cell === cell && x.benchmark === "shapes_pope" && x.index === 0)!;
  assert.equal(at("none@576").prompt_tokens - at("visionzip@64").prompt_tokens, 512);
  const report = readFileSync(path.join(cfg.output_dir, "report.md"), "utf8");
  assert.match(report, /\| none@576 \| 576 \|/);
  assert.match(report, /\| visionzip@64 \| 64 \|/);
  const svg = readFileSync(path.join(cfg.output_dir, "accuracy_vs_tokens.svg"), "utf8");
  assert.match(svg, /^<svg /);
  assert.match(svg, />shapes_pope</);
  // A finished eval run again scores nothing new and gives the same metrics.
  const again = await runEval(cfg, { quiet: true });
  assert.equal(again.scored, 0);
  assert.equal(again.resumed, 20);
  assert.deepEqual(metricsOf(again.results!), metricsOf(r));
});

test("an interrupted eval resumes where it stopped: no item scored twice, same results", async () => {
  const f = await fixture();
  const full = JSON.parse(readFileSync(path.join(f.root, "full", "results.json"), "utf8")) as EvalResults;
  const cfg = f.config({ output_dir: path.join(f.root, "resumed") });
  const first = await runEval(cfg, { quiet: true, stopAfterItems: 7 });
  assert.equal(first.interrupted, true);
  assert.ok(!existsSync(path.join(cfg.output_dir, "results.json")));
  const logged = readItemLog(path.join(cfg.output_dir, "items.jsonl")).records.length;
  assert.ok(logged >= 7 && logged < 20, `logged ${logged}`);
  // A crash mid-write leaves a torn last line: it is cut off, not parsed.
  const { appendFileSync } = await import("node:fs");
  appendFileSync(path.join(cfg.output_dir, "items.jsonl"), '{"kind":"item","cell":"none@5');
  const second = await runEval(cfg, { quiet: true });
  assert.equal(second.resumed, logged);
  assert.equal(second.scored, 20 - logged);
  const { records } = readItemLog(path.join(cfg.output_dir, "items.jsonl"));
  const keys = records.map((r) => `${r.cell}|${r.benchmark}|${r.index}`);
  assert.equal(new Set(keys).size, 20);
  assert.equal(keys.length, 20);
  assert.deepEqual(metricsOf(second.results!), metricsOf(full));
});

test("a log written under another config is refused", async () => {
  const f = await fixture();
  const cfg = f.config({ output_dir: path.join(f.root, "full"), max_new_tokens: 2 });
  await assert.rejects(runEval(cfg, { quiet: true }), /written by another eval config/);
});
