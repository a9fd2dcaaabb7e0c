// The in-LLM methods of the eval grid (fastv@B, topv@B, psigmoid@B, gsearch@<schedule file>): parsing, building
// against the LLM's sizes (bad cells fail naming the cell), P-Sigmoid's FLOPs budget, and a tiny `vzt eval` run whose
// records carry the FLOPs-equivalent retained tokens, the per-layer prefill FLOPs and KV bytes, with no tensor left.
import assert from "node:assert/strict";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { test } from "node:test";
import { tf } from "../../core/backend.js";
import { buildCell, parseGridCell } from "../../eval/grid.js";
import { runEval } from "../../eval/recipe.js";
import { readItemLog } from "../../eval/results.js";
import { TINY_LLM } from "../../models/make_tiny.js";
import { flopsEquivalentTokens, scheduleFlops, writeSchedule } from "../../reduce/schedule.js";
import { makeEvalFixture } from "./fixtures.js";

const LLAVA7B = { layers: 32, hidden: 4096, intermediate: 11008 };
const ctx = { patches: 576, seed: 0, llm: LLAVA7B };

test("grid: fastv / topv / psigmoid at a budget, gsearch and psigmoid from a schedule file", () => {
  assert.deepEqual(parseGridCell("fastv@64"), { key: "fastv@64", method: "fastv", budget: 64 });
  const fastv = buildCell(parseGridCell("fastv@64"), ctx);
  assert.equal(fastv.reducer.name, "none");
  assert.deepEqual(fastv.inLlm!.decisions(32, 576), [{ layer: 2, attention: "last" }]);
  assert.deepEqual(buildCell(parseGridCell("topv@128"), ctx).inLlm!.decisions(32, 576), [{ layer: 3, hiddenIO: true }]);
  // A 2-layer tiny LLM: the deepest layers that fit.
  const tiny = { ...ctx, llm: { layers: 2, hidden: 128, intermediate: 344 } };
  assert.deepEqual(buildCell(parseGridCell("fastv@64"), tiny).inLlm!.decisions(2, 576), [{ layer: 1, attention: "last" }]);
  assert.deepEqual(buildCell(parseGridCell("topv@64"), tiny).inLlm!.decisions(2, 576), [{ layer: 1, hiddenIO: true }]);
  assert.throws(() => buildCell(parseGridCell("psigmoid@64"), tiny), /grid: "psigmoid@64": P-Sigmoid needs an LLM of at least 3 layers/);
  assert.throws(() => buildCell(parseGridCell("fastv@600"), ctx), /exceeds the 576 patch tokens/);
  assert.throws(() => buildCell(parseGridCell("gsearch@64"), ctx), /gsearch@<schedule file>/);

  // P-Sigmoid at 64 FLOPs-equivalent tokens (40 text tokens): within one token below the budget.
  const ps = buildCell(parseGridCell("psigmoid@64"), ctx).inLlm!;
  const keep = (ps.params as { keep: number[] }).keep;
  const eq = flopsEquivalentTokens({ keep }, { numLayers: 32, numVisual: 576, textTokens: 40, hidden: 4096, intermediate: 11008 });
  assert.ok(eq <= 64 && eq > 63, `psigmoid@64 spends ${eq} equivalent tokens`);
  assert.ok(ps.decisions(32, 576).every((p) => p.layer >= 2 && p.attention === "textAfterImage"));

  const dir = mkdtempSync(path.join(tmpdir(), "vzt-grid-"));
  const file = path.join(dir, "g.json");
  writeSchedule(file, { numLayers: 32, numVisual: 576, keep: [576, 576, ...Array(10).fill(300), ...Array(20).fill(100)] });
  const cell = parseGridCell(`gsearch@${file}`);
  assert.deepEqual(cell, { key: `gsearch@${file}`, method: "gsearch", budget: Math.round((2 * 576 + 3000 + 2000) / 32), file });
  assert.deepEqual(buildCell(cell, ctx).inLlm!.decisions(32, 576).map((p) => p.layer), [2, 12]);
  assert.throws(() => buildCell(cell, tiny), /schedule is for 32 layers x 576 visual tokens, the model runs 2 x 576/);
  assert.throws(() => parseGridCell("visionzip@foo.json"), /not method@budget/);
});

test("vzt eval runs fastv@64 and topv@64 inside the LLM: FLOPs-equivalent tokens, per-layer FLOPs and KV bytes", async () => {
  const f = await makeEvalFixture();
  const cfg = f.config({ output_dir: path.join(f.root, "inllm"), grid: ["fastv@64", "topv@64"], benchmarks: [{ name: "shapes_pope", data: path.join(f.shapes, "eval_pope") }], limit: 2, batch_size: 2 });
  const tensors = tf.memory().numTensors;
  const s = await runEval(cfg, { quiet: true });
  assert.equal(tf.memory().numTensors, tensors, "runEval leaves no tensor behind");
  assert.equal(s.scored, 4);
  assert.equal(s.failed, 0);
  const { records } = readItemLog(path.join(cfg.output_dir, "items.jsonl"));
  const kvPerPos = 2 * TINY_LLM.kvHeads * (TINY_LLM.hidden / TINY_LLM.heads) * 4;
  for (const rec of records) {
    const text = rec.prompt_tokens - 576;
    const keep = [576, 64]; // both enter layer 1 with 64 on a 2-layer LLM
    const dims = { numLayers: 2, numVisual: 576, textTokens: text, hidden: TINY_LLM.hidden, intermediate: TINY_LLM.intermediate };
    assert.equal(rec.prefill_flops, scheduleFlops({ keep }, dims), rec.cell);
    assert.equal(rec.visual_tokens, Math.round(10 * flopsEquivalentTokens({ keep }, dims)) / 10, rec.cell);
    assert.ok(rec.visual_tokens > 64 && rec.visual_tokens < 576);
    assert.equal(rec.kv_cache_bytes, kvPerPos * (2 * (text + rec.new_tokens - 1) + 576 + 64), rec.cell);
  }
});
