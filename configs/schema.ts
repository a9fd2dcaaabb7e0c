// The RunConfig schema: every key of a training / eval recipe with its type, default and meaning, and the
// cross-field checks. `RunConfig` (the type loadConfig returns) is derived from it. Defaults live here only.
// Enum lists mirror the registries (reduce/reducer.ts REDUCERS, models/projector.ts PROJECTOR_TYPES,
// data/prompt.ts TEMPLATE_NAMES, core/backend.ts BACKENDS) without importing tfjs; test/configs checks they agree.
import { visionZipSplit } from "../reduce/budget.js";
import {
  anyOf, bool, derived, describeFields, int, isDerived, list, nullable, num, obj, oneOf, str,
  INVALID, type CheckContext, type Checked, type InferShape,
} from "./dsl.js";
import { pathField } from "./path_field.js";
import { BENCHMARK, modelSource, shardSpec, workerShard } from "./fields.js";

const shards = (doc: string) => nullable(shardSpec(doc), { doc });

export const REDUCER_NAMES = ["visionzip", "none", "uniform", "pool", "random"] as const;
export const PROJECTOR_TYPE_NAMES = ["mlp2x_gelu", "linear"] as const;
export const TEMPLATE_NAMES = ["vicuna_v1", "plain", "chat_template"] as const;
export const BACKEND_NAMES = ["auto", "tensorflow", "wasm", "cpu"] as const;

const MODEL_FIELDS = {
  llava: modelSource("folder", "HF LLaVA composite (folder or org/name): vision tower, LLM and tokenizer in one"),
  vision_tower: modelSource("folder", "CLIP vision model (folder or org/name); when model.llava is null"),
  llm: modelSource("folder", "LLaMA-family LLM (folder or org/name); when model.llava is null"),
  projector: modelSource("any", "projector to start from (LLaVA/HF folder, composite or .safetensors); null = fresh seeded init"),
  projector_type: oneOf(PROJECTOR_TYPE_NAMES, { default: "mlp2x_gelu", doc: "projector of a fresh init", aliases: ["mm_projector_type"] }),
  tokenizer: modelSource("folder", "tokenizer folder; null = the LLM's (or the composite's)"),
  vision_layer: int({ default: -2, doc: "hidden layer of the vision tower fed to the reducer", aliases: ["mm_vision_select_layer"] }),
  template: oneOf(TEMPLATE_NAMES, { default: "vicuna_v1", doc: "prompt template", aliases: ["conv_template", "version"] }),
};
const MODEL = obj(MODEL_FIELDS, { finish: checkModel });

const REDUCER_FIELDS = {
  name: oneOf(REDUCER_NAMES, { doc: "token reducer between the vision tower and the projector" }),
  dominant: nullable(int({ min: 1 }), { doc: "visionzip: tokens kept by CLS attention, CLS included" }),
  contextual: nullable(int({ min: 1 }), { doc: "visionzip: merged contextual tokens" }),
  budget: nullable(int({ min: 1 }), { doc: "tokens per image; visionzip: dominant + contextual (either side derives the other)" }),
  keep_cls: bool({ default: true, doc: "visionzip: keep the CLS token among the dominant ones" }),
  seed: derived(int({ min: 0 }), "the run's seed", { doc: "random: draw seed" }),
};
const REDUCER = obj(REDUCER_FIELDS, { finish: checkReducer });

const DATA = obj({
  train: shards("training shards; required by `vzt train`"),
  eval: shards("held-out shards for the eval loss every train.eval_every_steps"),
  split: nullable(str(), { doc: "split of a DatasetDict folder given as data.train" }),
  columns: obj(
    {
      id: nullable(str(), { default: "id" }),
      image: nullable(str(), { default: "image", doc: "null for text-only data" }),
      conversations: nullable(str(), { default: "conversations" }),
      question: nullable(str()),
      answers: nullable(str()),
    },
    { doc: "which column holds what (data/records.ts ColumnMapping)" },
  ),
  image_aspect_ratio: oneOf(["pad", "square"] as const, { default: "pad", doc: "LLaVA: pad to square with the mean colour; square = CLIP resize + center crop" }),
  max_length: int({ min: 1, default: 2048, doc: "tokens per sample, image tokens included", aliases: ["model_max_length"] }),
  on_error: oneOf(["raise", "skip"] as const, { default: "raise", doc: "bad rows: stop, or skip and count them" }),
  shuffle: bool({ default: true, doc: "seeded shuffle of each epoch" }),
  prefetch: int({ min: 0, default: 2, doc: "batches prepared ahead" }),
  shard: nullable(workerShard, { doc: "this worker's part \"i/N\"" }),
});

const TRAIN_FIELDS = {
  epochs: nullable(int({ min: 1 }), { doc: "passes over data.train (train.max_steps wins when set)", aliases: ["num_train_epochs"] }),
  max_steps: nullable(int({ min: 1 }), { doc: "optimizer steps; overrides epochs" }),
  micro_batch_size: int({ min: 1, default: 1, doc: "samples per forward/backward", aliases: ["per_device_train_batch_size", "batch_size"] }),
  global_batch_size: derived(int({ min: 1 }), "train.micro_batch_size (no accumulation)", {
    doc: "samples per optimizer step; a multiple of micro_batch_size",
    aliases: ["gradient_accumulation_steps"],
  }),
  max_grad_norm: nullable(num({ gt: 0 }), { default: 1, doc: "global-norm gradient clipping; null = none" }),
  eval_every_steps: nullable(int({ min: 1 }), { doc: "every N steps (and at the end): loss on data.eval and accuracy on eval.benchmarks; null = never", aliases: ["eval_steps"] }),
  eval_on_start: bool({ default: false, doc: "also evaluate before the first step (step 0, not on resume): the untrained baseline" }),
  eval_batches: nullable(int({ min: 1 }), { doc: "batches per eval; null = all of data.eval" }),
  feature_cache: anyOf<boolean | string>([bool(), pathField()], { default: false, doc: "cache vision features: true = <output_dir>/feature_cache, or a folder" }),
};
const TRAIN = obj(TRAIN_FIELDS, { finish: checkTrain });

const OPTIMIZER = obj({
  name: oneOf(["adamw"] as const, { default: "adamw", aliases: ["optim"] }),
  lr: num({ gt: 0, doc: "peak learning rate", aliases: ["learning_rate"] }),
  betas: list(num({ min: 0, lt: 1 }), { length: 2, default: [0.9, 0.999], aliases: ["adam_betas"] }),
  eps: num({ gt: 0, default: 1e-8, aliases: ["adam_epsilon", "epsilon"] }),
  weight_decay: num({ min: 0, default: 0, doc: "decoupled (AdamW)" }),
});

const SCHEDULE = obj({
  name: oneOf(["cosine", "constant", "linear"] as const, { default: "cosine", doc: "decay after warmup", aliases: ["lr_scheduler_type", "scheduler"] }),
  warmup_ratio: num({ min: 0, lt: 1, default: 0, doc: "warmup as a fraction of the total steps" }),
  warmup_steps: nullable(int({ min: 0 }), { doc: "warmup steps; overrides warmup_ratio when set (as in HF TrainingArguments)" }),
  min_lr_ratio: num({ min: 0, max: 1, default: 0, doc: "final LR as a fraction of optimizer.lr" }),
});

const CHECKPOINT = obj({
  every_steps: nullable(int({ min: 1 }), { default: 500, doc: "save every N steps (and at the end); null = at the end only", aliases: ["save_steps"] }),
  keep_last: nullable(int({ min: 1 }), { default: 3, doc: "step folders kept; null = all", aliases: ["save_total_limit", "keep_last_n_checkpoints"] }),
});

const LOGGING = obj({
  every_steps: int({ min: 1, default: 10, doc: "metrics every N steps", aliases: ["logging_steps", "log_every_n_steps"] }),
  tensorboard: bool({ default: true, doc: "event files under <output_dir>/tensorboard" }),
  progress: oneOf(["auto", "bar", "lines", "off"] as const, { default: "auto", doc: "auto: redrawn bar on a TTY, periodic lines otherwise" }),
});

const RUNTIME = obj({
  backend: oneOf(BACKEND_NAMES, { default: "auto", doc: "tfjs backend; VZT_BACKEND overrides" }),
});

/** Accuracy during training: the eval harness (issue 5) scores these benchmarks every train.eval_every_steps. */
const TRAIN_EVAL_FIELDS = {
  benchmarks: list(BENCHMARK, { default: [], doc: "benchmarks scored with the projector being trained and the run's reducer; [] = none" }),
  limit: nullable(int({ min: 1 }), { default: 40, doc: "first N items of each benchmark; null = all (keep it small: this runs inside training)" }),
  batch_size: int({ min: 1, default: 8, doc: "samples per generate call" }),
  max_new_tokens: nullable(int({ min: 1 }), { doc: "for every benchmark; null = each benchmark's lmms-eval default" }),
  stop_on_newline: bool({ default: true, doc: "a row stops at its first newline (as well as at EOS)" }),
};
const TRAIN_EVAL = obj(TRAIN_EVAL_FIELDS);

/** The whole recipe. `extends:` is consumed by the loader and never reaches the schema. */
const RUN_FIELDS = {
  output_dir: pathField({ doc: "where checkpoints, logs and the resolved config.yaml go" }),
  seed: int({ min: 0, default: 0, doc: "seeds init, shuffle and random reducers" }),
  model: MODEL,
  reducer: REDUCER,
  data: DATA,
  train: TRAIN,
  optimizer: OPTIMIZER,
  schedule: SCHEDULE,
  checkpoint: CHECKPOINT,
  logging: LOGGING,
  runtime: RUNTIME,
  eval: TRAIN_EVAL,
};
export const RUN_CONFIG = obj(RUN_FIELDS, { finish: checkRun });

export type RunConfig = InferShape<typeof RUN_FIELDS>;
export type ModelConfig = InferShape<typeof MODEL_FIELDS>;
export type ReducerConfig = InferShape<typeof REDUCER_FIELDS>;
export type DataConfig = RunConfig["data"];
export type TrainConfig = InferShape<typeof TRAIN_FIELDS>;
export type TrainEvalConfig = InferShape<typeof TRAIN_EVAL_FIELDS>;
export type OptimizerConfig = RunConfig["optimizer"];
export type ScheduleConfig = RunConfig["schedule"];

/** Every key of the schema, one line each: `key: expected (default: value) - meaning` (for `vzt validate --keys`). */
export function runConfigKeys(): string[] {
  return describeFields(RUN_CONFIG);
}

/** How long a run trains: train.max_steps when set (it overrides epochs), else train.epochs. */
export function trainLength(t: TrainConfig): { maxSteps: number } | { epochs: number } {
  if (t.max_steps !== null) return { maxSteps: t.max_steps };
  if (t.epochs !== null) return { epochs: t.epochs };
  throw new Error("train: neither max_steps nor epochs (the schema should have refused this config)");
}

// ---- cross-field checks --------------------------------------------------------------------------------------

function checkModel(m: ModelConfig, key: string, ctx: CheckContext): Checked<ModelConfig> {
  let ok = true;
  for (const part of ["vision_tower", "llm"] as const) {
    if (m.llava !== null && m[part] !== null) {
      ctx.report(`${key}.${part}`, "give model.llava (a LLaVA composite) or model.vision_tower + model.llm, not both");
      ok = false;
    } else if (m.llava === null && m[part] === null) {
      ctx.report(`${key}.${part}`, "missing required key: set model.vision_tower and model.llm, or model.llava");
      ok = false;
    }
  }
  return ok ? m : INVALID;
}

function checkReducer(r: ReducerConfig, key: string, ctx: CheckContext): Checked<ReducerConfig> {
  const bad = (k: string, msg: string): typeof INVALID => (ctx.report(`${key}.${k}`, msg), INVALID);
  if (r.name !== "visionzip") {
    for (const k of ["dominant", "contextual"] as const) {
      if (r[k] !== null) return bad(k, `only reducer visionzip uses it (reducer.name is "${r.name}"); remove it or set it to null`);
    }
    if (!r.keep_cls) return bad("keep_cls", `only reducer visionzip uses it (reducer.name is "${r.name}")`);
    if (r.name === "none" && r.budget !== null) return bad("budget", 'reducer "none" keeps every patch token; remove reducer.budget or set it to null');
    if (r.name !== "none" && r.budget === null) return bad("budget", `missing required key for reducer "${r.name}" (expected an integer >= 1)`);
    return r;
  }
  const { dominant: d, contextual: c, budget: b } = r;
  if (d !== null && c !== null) {
    if (b !== null && b !== d + c) return bad("budget", `must equal dominant + contextual = ${d} + ${c} = ${d + c}, got ${b}`);
    return { ...r, budget: d + c };
  }
  if (b === null) {
    return bad(d === null ? "dominant" : "contextual", "visionzip needs reducer.dominant + reducer.contextual (e.g. 54 + 10), or reducer.budget");
  }
  if (d === null && c === null) {
    try {
      const split = visionZipSplit(b, `${key}.budget`);
      return { ...r, ...split };
    } catch (e) {
      return bad("budget", (e as Error).message.replace(/^reducer\.budget: /, ""));
    }
  }
  const rest = b - (d ?? c ?? 0);
  if (rest < 1) return bad("budget", `must exceed ${d !== null ? "dominant" : "contextual"} (${d ?? c}) by at least 1, got ${b}`);
  return d !== null ? { ...r, contextual: rest } : { ...r, dominant: rest };
}

function checkTrain(t: TrainConfig, key: string, ctx: CheckContext): Checked<TrainConfig> {
  if (t.epochs === null && t.max_steps === null) {
    ctx.report(`${key}.max_steps`, "missing required key: set train.epochs or train.max_steps (max_steps wins when both are set)");
    return INVALID;
  }
  if (isDerived(t.global_batch_size)) return { ...t, global_batch_size: t.micro_batch_size };
  if (t.global_batch_size % t.micro_batch_size !== 0) {
    ctx.report(
      `${key}.global_batch_size`,
      `must be a multiple of train.micro_batch_size (${t.micro_batch_size}), got ${t.global_batch_size}`,
    );
    return INVALID;
  }
  return t;
}

function checkRun(c: RunConfig, _key: string, ctx: CheckContext): Checked<RunConfig> {
  const evalKey = c.train.eval_every_steps !== null ? "train.eval_every_steps" : c.train.eval_on_start ? "train.eval_on_start" : null;
  if (evalKey !== null && c.data.eval === null && c.eval.benchmarks.length === 0) {
    ctx.report("data.eval", `missing required key: ${evalKey} is set, so data.eval (held-out loss) or eval.benchmarks (accuracy) must say what to evaluate`);
    return INVALID;
  }
  const names = new Set<string>();
  for (const [i, b] of c.eval.benchmarks.entries()) {
    if (names.has(b.name)) {
      ctx.report(`eval.benchmarks[${i}].name`, `"${b.name}" is listed twice`);
      return INVALID;
    }
    names.add(b.name);
    if (b.name === "gqa" && b.images === null) {
      ctx.report(`eval.benchmarks[${i}].images`, "missing required key: gqa needs the images dataset (lmms-lab/GQA testdev_balanced_images)");
      return INVALID;
    }
  }
  return isDerived(c.reducer.seed) ? { ...c, reducer: { ...c.reducer, seed: c.seed } } : c;
}
