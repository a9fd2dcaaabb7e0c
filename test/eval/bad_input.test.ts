// Bad eval input: errors name the benchmark, shard (file) and row; an unknown benchmark lists the valid ones; an item
// that fails to generate is recorded as failed and counted, never dropped.
import assert from "node:assert/strict";
import path from "node:path";
import { test } from "node:test";
import { readFileSync } from "node:fs";
import { writeDatasetFolder } from "../../data/write_shards.js";
import { SHAPES_FEATURES } from "../../data/make_data.js";
import { openShards } from "../../data/arrow_shards.js";
import { getBenchmark } from "../../eval/benchmarks/registry.js";
import { generateBatch } from "../../eval/generate.js";
import { runEval } from "../../eval/recipe.js";
import { readItemLog } from "../../eval/results.js";
import type { EvalResults } from "../../eval/aggregate.js";
import { makeEvalFixture, type EvalFixture } from "./fixtures.js";

let fx: EvalFixture;
const fixture = async () => (fx ??= await makeEvalFixture());

/** The shapes eval_vqav2 rows with `edit` applied to row 2, written as a new dataset folder. */
async function editedVqa(f: EvalFixture, name: string, edit: (row: Record<string, unknown>) => Record<string, unknown>, features = SHAPES_FEATURES.eval_vqav2): Promise<string> {
  const rows: Record<string, unknown>[] = [];
  for await (const { row } of (await openShards(path.join(f.shapes, "eval_vqav2"))).rows()) rows.push({ ...row });
  rows[2] = edit(rows[2]!);
  const dir = path.join(f.root, name);
  await writeDatasetFolder(dir, features, rows);
  return dir;
}

const vqaConfig = (f: EvalFixture, data: string, name: string) =>
  f.config({ output_dir: path.join(f.root, `out-${name}`), grid: ["visionzip@64"], benchmarks: [{ name: "shapes_vqav2", data }] });

test("empty answers, wrong answer count and a missing image name the benchmark, shard file and row", async () => {
  const f = await fixture();
  const cases: [string, (r: Record<string, unknown>) => Record<string, unknown>, RegExp][] = [
    ["empty", (r) => ({ ...r, answers: [] }), /empty answers list/],
    ["short", (r) => ({ ...r, answers: (r.answers as unknown[]).slice(0, 3) }), /holds 3 answers, expected 10/],
    ["noimage", (r) => ({ ...r, image: null }), /missing image/],
  ];
  for (const [name, edit, why] of cases) {
    const data = await editedVqa(f, name, edit);
    await assert.rejects(runEval(vqaConfig(f, data, name), { quiet: true }), (e: Error) => {
      assert.match(e.message, why);
      assert.match(e.message, /benchmark shapes_vqav2/);
      assert.match(e.message, /data-00000-of-00001\.arrow/);
      assert.match(e.message, /row 2/);
      return true;
    });
  }
});

test("a missing column is named with the benchmark and the columns there are; unknown benchmarks list the valid ones", async () => {
  const f = await fixture();
  const { question: _q, ...features } = SHAPES_FEATURES.eval_vqav2;
  const data = await editedVqa(f, "noquestion", (r) => r, features);
  await assert.rejects(runEval(vqaConfig(f, data, "noquestion"), { quiet: true }), /benchmark shapes_vqav2: missing column\(s\) "question" \(columns: question_type,/);
  assert.throws(() => getBenchmark("vqa3"), /unknown benchmark "vqa3"; valid: vqav2, gqa, pope, textvqa, mme, scienceqa, shapes_vqav2, shapes_pope/);
  assert.throws(() => f.config({ benchmarks: [{ name: "popee", data: f.shapes }] }), /benchmarks\[0\]\.name: expected one of .*did you mean "pope"/);
});

test("an item whose generation fails is recorded as failed and counted, its batch neighbours are not", async () => {
  const f = await fixture();
  const cfg = f.config({ output_dir: path.join(f.root, "out-failing"), grid: ["visionzip@64"], benchmarks: [{ name: "shapes_pope", data: path.join(f.shapes, "eval_pope") }] });
  // Fails whenever the batch holds the prompt of item 1 (the second request of the first batch).
  let poison: number[] | undefined;
  const failing: typeof generateBatch = async (vlm, reducer, reqs, opts) => {
    poison ??= reqs[1]!.inputIds;
    if (reqs.some((r) => r.inputIds === poison)) throw new Error("simulated out of memory");
    return generateBatch(vlm, reducer, reqs, opts);
  };
  const s = await runEval(cfg, { quiet: true, generate: failing });
  assert.equal(s.failed, 1);
  const r = JSON.parse(readFileSync(path.join(cfg.output_dir, "results.json"), "utf8")) as EvalResults;
  assert.equal(r.results["visionzip@64"]!.shapes_pope!.n, 5);
  assert.equal(r.results["visionzip@64"]!.shapes_pope!.failed, 1);
  assert.equal(r.cells["visionzip@64"]!.failed, 1);
  const { records } = readItemLog(path.join(cfg.output_dir, "items.jsonl"));
  const bad = records.filter((x) => x.failed);
  assert.equal(bad.length, 1);
  assert.equal(bad[0]!.index, 1);
  assert.match(bad[0]!.failed!, /generate: simulated out of memory/);
  assert.equal(records.filter((x) => !x.failed && x.prediction !== "").length, 4);
});
