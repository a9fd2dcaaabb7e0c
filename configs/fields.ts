// Field kinds shared by the training and eval schemas: model sources, Arrow shard specs, a worker's "i/N" part,
// a benchmark entry (eval configs, and training configs that score a benchmark during training).
import { existsSync } from "node:fs";
import path from "node:path";
import { parseShardSpec } from "../data/sampler.js";
import { expandGlob, hasGlob } from "../data/shard_paths.js";
import { parseRepoId } from "../models/hub.js";
import { field, int, nullable, obj, oneOf, oneOrMany, str, INVALID } from "./dsl.js";
import { pathField } from "./path_field.js";

/**
 * A model folder, or a Hub id `org/name[@revision]` (resolved by models/hub.ts at setup, not checked here). A
 * missing `a/b` whose folder `a` exists locally is taken as a mistyped local path, not a Hub id.
 */
export const modelSource = (type: "folder" | "any", doc: string) =>
  nullable(
    pathField({
      mustExist: true,
      type,
      what: `a ${type === "folder" ? "folder" : "file or folder"} or Hub id org/name`,
      accept: (p, abs) => parseRepoId(p) !== undefined && !existsSync(path.dirname(abs)),
    }),
    { doc },
  );

/** Arrow shards: a file, a folder (save_to_disk or *.arrow), a glob that must match, or a list of these. */
export const shardSpec = (doc: string) => oneOrMany(pathField({ mustExist: true, accept: (p, abs) => hasGlob(p) && expandGlob(abs).length > 0 }), { doc });

export const workerShard = field<string>("\"i/N\" with 0 <= i < N", {}, (v, key, ctx) => {
  try {
    if (typeof v === "string") return (parseShardSpec(v), v);
  } catch (e) {
    ctx.report(key, (e as Error).message.replace(/^--shard /, "expected \"i/N\" with 0 <= i < N, got "));
    return INVALID;
  }
  ctx.report(key, `expected "i/N" with 0 <= i < N, got ${JSON.stringify(v)}`);
  return INVALID;
});


/** Benchmark names; mirror eval/benchmarks/registry.ts BENCHMARKS (test/eval/config.test.ts checks they agree). */
export const BENCHMARK_NAMES = ["vqav2", "gqa", "pope", "textvqa", "mme", "scienceqa", "shapes_vqav2", "shapes_pope"] as const;

export const BENCHMARK_FIELDS = {
  name: oneOf(BENCHMARK_NAMES, { doc: "benchmark (eval/benchmarks/registry.ts)" }),
  data: shardSpec("Arrow shards: a file, folder (save_to_disk / DatasetDict), glob or list"),
  split: nullable(str(), { doc: "split of a DatasetDict folder" }),
  images: nullable(shardSpec("gqa: the images dataset (id, image), joined on imageId")),
  images_split: nullable(str(), { doc: "split of the images DatasetDict" }),
  limit: nullable(int({ min: 1 }), { doc: "first N items; null = the top-level limit" }),
  max_new_tokens: nullable(int({ min: 1 }), { doc: "null = the top-level max_new_tokens, else the benchmark's lmms-eval default" }),
};
export const BENCHMARK = obj(BENCHMARK_FIELDS);
