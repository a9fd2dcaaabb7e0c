// The eval config schema (`vzt eval --config configs/eval/<name>.yaml`): the model, the benchmarks with their data,
// the grid of `method@budget` cells, batching and generation limits, and where results go. `EvalConfig` is derived
// from it; defaults live here only. Name lists mirror the registries (eval/grid.ts GRID_METHODS,
// eval/benchmarks/registry.ts BENCHMARKS) without importing tfjs; test/eval/config.test.ts checks they agree.
import { bool, field, int, list, nullable, num, obj, oneOf, str, INVALID, type CheckContext, type Checked, type Field, type InferShape } from "./dsl.js";
import { loadWithSchema, objectWithSchema, type SchemaLoadOptions } from "./load_schema.js";
import { pathField } from "./path_field.js";
import { BENCHMARK, BENCHMARK_FIELDS, BENCHMARK_NAMES, modelSource, shardSpec as shards, workerShard } from "./fields.js";
export { BENCHMARK_NAMES };
import { BACKEND_NAMES, TEMPLATE_NAMES } from "./schema.js";

export const GRID_METHOD_NAMES = ["none", "visionzip", "uniform", "pool", "random", "fastv", "topv", "psigmoid", "gsearch"] as const;
/** Methods whose cell may name a keep-schedule file instead of a budget (`gsearch@schedules/g.json`). */
export const SCHEDULE_FILE_METHODS = ["psigmoid", "gsearch"] as const;

const CELL = /^\s*([a-z][a-z0-9_]*)\s*@\s*(\d+)\s*$/;
const FILE_CELL = /^\s*([a-z][a-z0-9_]*)@(.*\D.*?)\s*$/;
const gridCell = field<string>("method@budget, e.g. visionzip@64 (gsearch@<schedule file>)", {}, (v, key, ctx) => {
  const f = typeof v === "string" && !CELL.exec(v) ? FILE_CELL.exec(v) : null;
  if (f && (SCHEDULE_FILE_METHODS as readonly string[]).includes(f[1]!)) return `${f[1]}@${f[2]}`;
  const m = typeof v === "string" ? CELL.exec(v) : null;
  if (!m) {
    ctx.report(key, `expected method@budget (e.g. visionzip@64, none@576), got ${JSON.stringify(v)}`);
    return INVALID;
  }
  if (!(GRID_METHOD_NAMES as readonly string[]).includes(m[1]!)) {
    ctx.report(key, `unknown method "${m[1]}" in ${JSON.stringify(v)}; valid: ${GRID_METHOD_NAMES.join(", ")}`);
    return INVALID;
  }
  if (Number(m[2]) < 1) {
    ctx.report(key, `budget must be a positive integer, got ${JSON.stringify(v)}`);
    return INVALID;
  }
  return `${m[1]}@${Number(m[2])}`;
});


const MODEL_FIELDS = {
  llava: modelSource("folder", "HF or original LLaVA composite (folder or org/name)"),
  vision_tower: modelSource("folder", "CLIP vision model; overrides the composite's"),
  llm: modelSource("folder", "LLaMA-family LLM; overrides the composite's"),
  projector: modelSource("any", "projector: .safetensors, LLaVA/HF folder, `vzt export` folder, a training step_NNNNNN folder or a training output_dir (its latest complete step); null = the composite's"),
  tokenizer: modelSource("folder", "tokenizer folder; null = the composite's or the LLM's"),
  template: oneOf(TEMPLATE_NAMES, { default: "vicuna_v1", doc: "prompt template (vicuna_v1 for LLaVA-1.5)", aliases: ["conv_template", "version"] }),
  vision_layer: nullable(int(), { doc: "vision hidden layer; null = the model config's (default -2)", aliases: ["mm_vision_select_layer"] }),
  image_aspect_ratio: oneOf(["auto", "pad", "square"] as const, { default: "auto", doc: "auto = the model config's (pad for original LLaVA-1.5, CLIP resize + crop otherwise)" }),
};
const MODEL = obj(MODEL_FIELDS, { finish: checkModel });


/** [lo, hi] with lo <= hi, each checked by `item`. */
const range = (item: Field<number>, dflt: [number, number], doc: string) =>
  field<readonly [number, number]>(`[lo, hi] with lo <= hi, each ${item.expected}`, { default: dflt, doc }, (v, key, ctx) => {
    if (!Array.isArray(v) || v.length !== 2) {
      ctx.report(key, `expected [lo, hi], each ${item.expected}, got ${JSON.stringify(v)}`);
      return INVALID;
    }
    const lo = item.check(v[0], `${key}[0]`, ctx);
    const hi = item.check(v[1], `${key}[1]`, ctx);
    if (lo === INVALID || hi === INVALID) return INVALID;
    if (lo > hi) {
      ctx.report(key, `lower bound ${lo} is above the upper bound ${hi}`);
      return INVALID;
    }
    return [lo, hi] as const;
  });

const SEARCH_FIELDS = {
  benchmark: nullable(oneOf(BENCHMARK_NAMES), { doc: "benchmark scored by the search (one of benchmarks[].name); null = the first" }),
  data: nullable(shards("a held-out search split (Arrow shards, same columns); null = the benchmark's data")),
  split: nullable(str(), { doc: "split of a DatasetDict folder; null = search.data's default, or the benchmark's split" }),
  limit: int({ min: 1, default: 300, doc: "first N items of the search split (the paper's search set: a few hundred items)" }),
  tolerance: num({ min: 0, default: 0, doc: "gsearch: allowed absolute drop of the primary metric vs the unreduced model (percentage points; 0 = without degrading)" }),
  rates: nullable(list(num({ min: 0, max: 1 }), { minLength: 1 }), { doc: "gsearch candidate keep rates (fractions of the visual tokens), strictly descending; null = every token count" }),
  strategy: oneOf(["binary", "linear"] as const, { default: "binary", doc: "gsearch: bisect the candidates (assumes accuracy monotone in the kept count) or scan down" }),
  budget: nullable(num({ gt: 0 }), { doc: "psigmoid: FLOPs-equivalent retained tokens (vzt psigmoid --budget overrides)" }),
  seed: nullable(int({ min: 0 }), { doc: "psigmoid: seed of the Bayesian optimisation; null = the top-level seed" }),
  random_trials: int({ min: 1, default: 5, doc: "psigmoid: random initial trials" }),
  guided_trials: int({ min: 0, default: 25, doc: "psigmoid: GP + expected-improvement trials" }),
  bounds: obj({
    k: range(num({ gt: 0 }), [0.1, 4], "psigmoid: box of the sigmoid steepness k"),
    r_min: range(num({ min: 0, lt: 1 }), [0, 0.5], "psigmoid: box of the floor rate r_min (capped at 0.9 x the floor that alone spends the budget)"),
  }),
  text_tokens: nullable(int({ min: 0 }), { doc: "psigmoid: prompt text tokens the FLOPs budget is solved for; null = the mean measured on the search split" }),
  output: nullable(pathField(), { doc: "schedule JSON; null = <output_dir>/gsearch.json or <output_dir>/psigmoid-<budget>.json" }),
  state: nullable(pathField(), { doc: "resumable search state (+ <state>.context.json: what it was made with); null = the output path with .state.json" }),
};
const SEARCH = obj(SEARCH_FIELDS, { finish: checkSearch });

const EVAL_FIELDS = {
  output_dir: pathField({ doc: "results.json, report.md, plots, items.jsonl (the resume log) and samples.jsonl go here" }),
  seed: int({ min: 0, default: 0, doc: "seeds random reducers" }),
  model: MODEL,
  benchmarks: list(BENCHMARK, { minLength: 1, doc: "benchmarks to run in every grid cell" }),
  grid: list(gridCell, { minLength: 1, doc: "cells method@budget; none@<patches> is the % of full reference" }),
  batch_size: int({ min: 1, default: 8, doc: "samples per generate call (left-padded)", aliases: ["micro_batch_size"] }),
  max_new_tokens: nullable(int({ min: 1 }), { doc: "for every benchmark; null = each benchmark's lmms-eval default" }),
  limit: nullable(int({ min: 1 }), { doc: "first N items of each benchmark; null = all" }),
  stop_on_newline: bool({ default: true, doc: "a row stops at its first newline (as well as at EOS)" }),
  warmup: bool({ default: true, doc: "one untimed batch per grid cell first, so timings leave out first-call costs" }),
  samples: bool({ default: true, doc: "write samples.jsonl (every prediction with its score)" }),
  shard: nullable(workerShard, { doc: "this worker's part \"i/N\" (vzt eval --shard i/N)" }),
  runtime: obj({ backend: oneOf(BACKEND_NAMES, { default: "auto", doc: "tfjs backend; VZT_BACKEND overrides" }) }),
  search: SEARCH,
};
export const EVAL_CONFIG = obj(EVAL_FIELDS, { finish: checkEval });

export type EvalConfig = InferShape<typeof EVAL_FIELDS>;
export type EvalModelConfig = InferShape<typeof MODEL_FIELDS>;
export type EvalBenchmarkConfig = InferShape<typeof BENCHMARK_FIELDS>;
/** `vzt gsearch` / `vzt psigmoid` settings (eval/search.ts). */
export type EvalSearchConfig = InferShape<typeof SEARCH_FIELDS>;

function checkSearch(s: EvalSearchConfig, key: string, ctx: CheckContext): Checked<EvalSearchConfig> {
  let ok = true;
  s.rates?.forEach((r, i) => {
    const prev = s.rates![i - 1];
    if (prev !== undefined && !(r < prev)) {
      ctx.report(`${key}.rates[${i}]`, `rates must be strictly descending, got ${r} after ${prev}`);
      ok = false;
    }
  });
  return ok ? s : INVALID;
}

function checkModel(m: EvalModelConfig, key: string, ctx: CheckContext): Checked<EvalModelConfig> {
  if (m.llava === null && (m.vision_tower === null || m.llm === null || m.projector === null)) {
    ctx.report(`${key}.llava`, "missing required key: set model.llava, or all of model.vision_tower, model.llm and model.projector");
    return INVALID;
  }
  return m;
}

function checkEval(c: EvalConfig, _key: string, ctx: CheckContext): Checked<EvalConfig> {
  let ok = true;
  const seen = new Set<string>();
  c.grid.forEach((cell, i) => {
    if (seen.has(cell)) {
      ctx.report(`grid[${i}]`, `"${cell}" is listed twice`);
      ok = false;
    }
    seen.add(cell);
  });
  const names = new Set<string>();
  c.benchmarks.forEach((b, i) => {
    if (names.has(b.name)) {
      ctx.report(`benchmarks[${i}].name`, `"${b.name}" is listed twice`);
      ok = false;
    }
    names.add(b.name);
    if (b.name === "gqa" && b.images === null) {
      ctx.report(`benchmarks[${i}].images`, "missing required key: gqa needs the images dataset (lmms-lab/GQA testdev_balanced_images)");
      ok = false;
    }
  });
  if (c.search.benchmark !== null && !names.has(c.search.benchmark)) {
    ctx.report("search.benchmark", `"${c.search.benchmark}" is not one of benchmarks[].name (${[...names].join(", ")})`);
    ok = false;
  }
  return ok ? c : INVALID;
}

/** Reads, overrides, resolves and validates an eval config file (every problem at once in one ConfigError). */
export function loadEvalConfig(file: string, opts: SchemaLoadOptions = {}): EvalConfig {
  return loadWithSchema(EVAL_CONFIG, file, opts);
}

/** Validates an eval config given as a plain object. */
export function evalConfigFromObject(raw: unknown, opts: Omit<SchemaLoadOptions, "sets"> & { label?: string } = {}): EvalConfig {
  return objectWithSchema(EVAL_CONFIG, raw, opts);
}
