// Sharded eval (--shard i/N) merged equals the unsharded eval; merging refuses missing or unfinished shards.
import assert from "node:assert/strict";
import { existsSync, rmSync } from "node:fs";
import path from "node:path";
import { test } from "node:test";
import type { EvalResults } from "../../eval/aggregate.js";
import { mergeShards } from "../../eval/outputs.js";
import { runEval } from "../../eval/recipe.js";
import { makeEvalFixture } from "./fixtures.js";

const metricsOf = (r: EvalResults) => Object.fromEntries(Object.entries(r.results).map(([c, b]) => [c, Object.fromEntries(Object.entries(b).map(([n, x]) => [n, { metrics: x.metrics, n: x.n }]))]));

test("shards 0/2 and 1/2 merged give the unsharded results; merge names missing and unfinished shards", async () => {
  const f = await makeEvalFixture();
  const one = await runEval(f.config({ output_dir: path.join(f.root, "one"), grid: ["visionzip@64"] }), { quiet: true });
  const cfg = f.config({ output_dir: path.join(f.root, "sharded"), grid: ["visionzip@64"] });
  assert.throws(() => mergeShards([cfg.output_dir]), /no shard folders/);
  const s0 = await runEval(cfg, { quiet: true, shard: "0/2" });
  assert.equal(s0.results, undefined); // shard 1 has not run yet
  assert.equal(s0.scored, 3 + 3); // positions 0, 2, 4 of each benchmark
  assert.throws(() => mergeShards([cfg.output_dir]), /shard 1-of-2 is missing/);
  const s1 = await runEval(cfg, { quiet: true, shard: "1/2" });
  assert.equal(s1.scored, 2 + 2);
  assert.ok(s1.results, "the last shard to finish merges");
  assert.deepEqual(metricsOf(s1.results!), metricsOf(one.results!));
  assert.ok(existsSync(path.join(cfg.output_dir, "report.md")));
  // An explicit merge gives the same; a shard without its completion marker is refused.
  assert.deepEqual(metricsOf(mergeShards([cfg.output_dir]).results), metricsOf(one.results!));
  rmSync(path.join(cfg.output_dir, "shards", "1-of-2", "complete.json"));
  assert.throws(() => mergeShards([cfg.output_dir]), /shard 1-of-2 has not finished/);
});
