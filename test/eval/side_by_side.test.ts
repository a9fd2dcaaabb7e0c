// The methods side by side (report section and plots) from hand-made records: columns per method (a fitted schedule
// file in its own column), rows per budget (a file at its FLOPs-equivalent tokens), every metric's table, and one plot
// per metric with one line per method at the cells' (FLOPs-equivalent) retained tokens, in readable units.
import assert from "node:assert/strict";
import { test } from "node:test";
import { buildResults, type EvalMeta } from "../../eval/aggregate.js";
import { evalPlots, methodSeries } from "../../eval/plots.js";
import { renderReport, sideBySideSection } from "../../eval/report.js";
import type { ItemRecord } from "../../eval/results.js";
import { methodLabel, sideBySide } from "../../eval/side_by_side.js";

// cell -> [visual tokens (FLOPs-equivalent for in-LLM), accuracy 0/1 of 2 items, prefill ms, flops, kv bytes]
const CELLS: Record<string, [string, number, [number, number], number, number, number]> = {
  "none@576": ["none", 576, [1, 1], 400, 7.2e9, 10 * 2 ** 20],
  "visionzip@128": ["visionzip", 128, [1, 0], 60, 1.4e9, 3 * 2 ** 20],
  "visionzip@64": ["visionzip", 64, [0, 0], 30, 0.8e9, 2 * 2 ** 20],
  "fastv@64": ["fastv", 110.2, [1, 0], 70, 1.2e9, 2.4 * 2 ** 20],
  "psigmoid@64": ["psigmoid", 63.6, [1, 1], 50, 0.8e9, 1.5 * 2 ** 20],
  "psigmoid@/s/p-128.json": ["psigmoid", 127.8, [1, 1], 80, 1.4e9, 2.5 * 2 ** 20],
  "gsearch@/s/g.json": ["gsearch", 240.4, [1, 1], 120, 2.5e9, 4 * 2 ** 20],
};

function results() {
  const meta: EvalMeta = {
    config: {}, config_hash: "h", versions: {}, backend: "cpu", baseline: "none@576", model: {},
    // a budget cell's budget is its B; a schedule file's is its mean kept count (parseGridCell), not where it is reported
    grid: Object.keys(CELLS).map((key) => ({ key, method: CELLS[key]![0], budget: /@\d+$/.test(key) ? Number(key.split("@")[1]) : 300 })),
    benchmarks: [{ name: "shapes_vqav2", primary: "accuracy", items: 2 }],
  };
  const records: ItemRecord[] = Object.entries(CELLS).flatMap(([cell, [, tokens, acc, prefill, flops, kv]]) =>
    acc.map((a, index) => ({
      cell, benchmark: "shapes_vqav2", index, id: String(index), prompt: "", target: "", prediction: "x", score: { accuracy: a },
      visual_tokens: tokens, prompt_tokens: 600, new_tokens: 1, tower_ms: 10, reducer_ms: 1, prefill_ms: prefill, decode_ms_per_token: null, kv_cache_bytes: kv, prefill_flops: flops,
    })),
  );
  return buildResults(meta, records, "2020-01-01");
}

test("side by side: a column per method, a row per budget, files at their FLOPs-equivalent tokens", () => {
  assert.equal(methodLabel("psigmoid@64", "psigmoid"), "psigmoid");
  assert.equal(methodLabel("psigmoid@/s/p-128.json", "psigmoid"), "psigmoid (fitted)");
  assert.equal(methodLabel("gsearch@/s/g.json", "gsearch"), "gsearch");
  const r = results();
  const g = sideBySide(r);
  assert.equal(g.full, "none@576");
  assert.deepEqual(g.methods, ["visionzip", "fastv", "psigmoid", "psigmoid (fitted)", "gsearch"]);
  assert.deepEqual(g.rows, [240, 128, 64]);
  assert.equal(g.at("psigmoid (fitted)", 128), "psigmoid@/s/p-128.json");
  assert.equal(g.at("fastv", 64), "fastv@64");
  assert.equal(g.at("fastv", 128), undefined);

  const text = sideBySideSection(r).join("\n");
  assert.match(text, /### shapes_vqav2: accuracy \(full: 100\.0\)\n\n\| budget \| visionzip \| fastv \| psigmoid \| psigmoid \(fitted\) \| gsearch \|/);
  assert.match(text, /\| 128 \| 50\.0 \| – \| – \| 100\.0 \| – \|\n\| 64 \| 0\.0 \| 50\.0 \| 100\.0 \| – \| – \|/);
  assert.match(text, /### retained visual tokens[^\n]*\n\n[^\n]*\n[^\n]*\n\| 240 \| – \| – \| – \| – \| 240\.4 \|/);
  assert.match(text, /### LLM prefill ms \/ sample \(median\) \(full: 400\.00\)/);
  assert.match(text, /### prefill FLOPs \/ sample \(full: 7\.20 G\)[\s\S]*\| 64 \| 800\.00 M \| 1\.20 G \| 800\.00 M \| – \| – \|/);
  assert.match(text, /### KV cache \/ sample \(full: 10\.0 MiB\)[\s\S]*\| 64 \| 2\.0 MiB \| 2\.4 MiB \| 1\.5 MiB \| – \| – \|/);
  assert.ok(renderReport(r).includes("## Methods side by side"));
  // One method besides the reference: nothing to put side by side.
  const one = structuredClone(r);
  one.grid = ["none@576", "visionzip@128", "visionzip@64"];
  assert.deepEqual(sideBySideSection(one), []);
});

test("a plot per metric, one line per method at the cells' retained tokens, in readable units", () => {
  const r = results();
  const plots = evalPlots(r);
  assert.deepEqual(Object.keys(plots), ["accuracy_vs_tokens.svg", "prefill_vs_tokens.svg", "flops_vs_tokens.svg", "kv_cache_vs_tokens.svg"]);
  const flops = methodSeries(r, (cell) => r.cells[cell]?.prefill_flops);
  assert.deepEqual(flops.map((s) => s.name), ["full (none@576)", "visionzip", "fastv", "psigmoid", "psigmoid (fitted)", "gsearch"]);
  assert.deepEqual(flops.find((s) => s.name === "visionzip")!.points, [[128, 1.4e9], [64, 0.8e9]]);
  assert.deepEqual(flops.find((s) => s.name === "fastv")!.points, [[110.2, 1.2e9]]);
  assert.ok(flops[0]!.reference);
  for (const [file, svg] of Object.entries(plots)) {
    assert.match(svg, /^<svg [^>]*width="\d+" height="\d+"/, file);
    for (const name of ["visionzip", "fastv", "psigmoid (fitted)", "gsearch", "full (none@576)"]) assert.ok(svg.includes(`>${name}</text>`), `${file}: legend ${name}`);
    assert.equal((svg.match(/<polyline /g) ?? []).length, 1, `${file}: only visionzip has two points`);
    assert.equal((svg.match(/stroke-dasharray="6 4"/g) ?? []).length, 2, `${file}: the full reference line and its legend entry`);
  }
  assert.match(plots["flops_vs_tokens.svg"]!, />prefill GFLOPs \/ sample</);
  assert.match(plots["kv_cache_vs_tokens.svg"]!, />KV cache MiB \/ sample</);
  // x spans the methods (up to 240.4 -> 250), not the full model's 576
  assert.match(plots["prefill_vs_tokens.svg"]!, />250</);
  assert.doesNotMatch(plots["prefill_vs_tokens.svg"]!, />600</);
});
