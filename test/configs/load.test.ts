// Config loading: every error kind with its exact message, all problems at once, did-you-mean, extends chains and
// cycles, --set overrides, ${...} references, defaults, cross-field checks, hash, diff and the resolved file.
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { test } from "node:test";
import { ConfigError } from "../../core/errors.js";
import { loadConfig, validateConfigFile, type LoadOptions } from "../../configs/load.js";
import { configHash, diffConfigs, writeResolvedConfig } from "../../configs/resolved.js";
import { trainLength, type RunConfig } from "../../configs/schema.js";

/** A fresh working directory with `files` (relative path -> text) written into it. */
function workspace(files: Record<string, string>): string {
  const dir = mkdtempSync(path.join(tmpdir(), "vzt-config-"));
  for (const [rel, text] of Object.entries(files)) {
    mkdirSync(path.dirname(path.join(dir, rel)), { recursive: true });
    writeFileSync(path.join(dir, rel), text);
  }
  return dir;
}

const BASE = `
output_dir: runs/a
model:
  vision_tower: models/clip
  llm: models/llm
reducer:
  name: visionzip
  dominant: 54
  contextual: 10
data:
  train: data/train
train:
  max_steps: 10
optimizer:
  lr: 1.0e-3
`;

function load(files: Record<string, string>, file = "configs/run.yaml", opts: LoadOptions = {}): RunConfig {
  const cwd = workspace(files);
  return loadConfig(file, { checkPaths: false, cwd, ...opts });
}

function problemsOf(fn: () => unknown): string[] {
  try {
    fn();
  } catch (e) {
    assert.ok(e instanceof ConfigError, `expected a ConfigError, got ${String(e)}`);
    return e.problems;
  }
  assert.fail("expected a ConfigError");
}

test("defaults are filled from the schema", () => {
  const c = load({ "configs/run.yaml": BASE });
  assert.equal(c.seed, 0);
  assert.deepEqual(c.optimizer, { name: "adamw", lr: 1e-3, betas: [0.9, 0.999], eps: 1e-8, weight_decay: 0 });
  assert.deepEqual(c.schedule, { name: "cosine", warmup_ratio: 0, warmup_steps: null, min_lr_ratio: 0 });
  assert.equal(c.model.vision_layer, -2);
  assert.equal(c.model.template, "vicuna_v1");
  assert.equal(c.model.projector, null);
  assert.equal(c.model.projector_type, "mlp2x_gelu");
  assert.deepEqual(c.data.columns, { id: "id", image: "image", conversations: "conversations", question: null, answers: null });
  assert.equal(c.data.image_aspect_ratio, "pad");
  assert.equal(c.data.on_error, "raise");
  assert.equal(c.data.shuffle, true);
  assert.equal(c.train.micro_batch_size, 1);
  assert.equal(c.train.global_batch_size, 1, "global_batch_size defaults to micro_batch_size");
  assert.equal(c.train.epochs, null);
  assert.deepEqual(c.logging, { every_steps: 10, tensorboard: true, progress: "auto" });
  assert.deepEqual(c.checkpoint, { every_steps: 500, keep_last: 3 });
  assert.equal(c.runtime.backend, "auto");
  assert.deepEqual(c.eval, { benchmarks: [], limit: 40, batch_size: 8, max_new_tokens: null, stop_on_newline: true });
  assert.equal(c.reducer.budget, 64, "visionzip budget = dominant + contextual");
  assert.equal(c.reducer.seed, 0, "reducer.seed defaults to the run seed");
  assert.ok(Object.isFrozen(c) && Object.isFrozen(c.optimizer.betas), "the config is deep-frozen");
  assert.throws(() => {
    (c.optimizer as { lr: number }).lr = 1;
  }, TypeError);
});

test("wrong type: key path, expectation, value and file", () => {
  const p = problemsOf(() => load({ "configs/run.yaml": BASE.replace("lr: 1.0e-3", 'lr: "1e-3x"') }));
  assert.deepEqual(p, ['optimizer.lr: expected a positive number, got "1e-3x" (configs/run.yaml)']);
  const q = problemsOf(() => load({ "configs/run.yaml": BASE + "seed: -1\n" }));
  assert.deepEqual(q, ["seed: expected a non-negative integer, got -1 (configs/run.yaml)"]);
  const r = problemsOf(() => load({ "configs/run.yaml": BASE.replace("max_steps: 10", "max_steps: 2.5\n  micro_batch_size: [4]") }));
  assert.deepEqual(r, [
    "train.max_steps: expected an integer >= 1 or null, got 2.5 (configs/run.yaml)",
    "train.micro_batch_size: expected an integer >= 1, got [4] (configs/run.yaml)",
  ]);
});

test("unknown key: did you mean the nearest valid name", () => {
  const p = problemsOf(() =>
    load({ "configs/run.yaml": BASE.replace("lr: 1.0e-3", "learning_rate: 1.0e-3\n  lr: 1.0e-3") + "trian:\n  epochs: 1\n" }),
  );
  assert.deepEqual(p, [
    'trian: unknown key; did you mean "train"? (configs/run.yaml)',
    'optimizer.learning_rate: unknown key; did you mean "optimizer.lr"? (configs/run.yaml)',
  ]);
  const q = problemsOf(() => load({ "configs/run.yaml": BASE.replace("max_steps: 10", "max_steps: 10\n  lr: 0.1\n  zzzzzzzz: 1") }));
  assert.deepEqual(q, [
    'train.lr: unknown key; did you mean "optimizer.lr"? (configs/run.yaml)',
    "train.zzzzzzzz: unknown key; valid keys of train: epochs, max_steps, micro_batch_size, global_batch_size, " +
      "max_grad_norm, eval_every_steps, eval_on_start, eval_batches, feature_cache (configs/run.yaml)",
  ]);
});

test("bad enum value lists the valid ones", () => {
  const p = problemsOf(() => load({ "configs/run.yaml": BASE + "schedule:\n  name: cosin\nruntime:\n  backend: gpu\n" }));
  assert.deepEqual(p, [
    'schedule.name: expected one of cosine | constant | linear, got "cosin"; did you mean "cosine"? (configs/run.yaml)',
    'runtime.backend: expected one of auto | tensorflow | wasm | cpu, got "gpu"; did you mean "cpu"? (configs/run.yaml)',
  ]);
});

test("missing required keys", () => {
  const text = BASE.replace("output_dir: runs/a\n", "").replace("  lr: 1.0e-3\n", "  eps: 1.0e-6\n").replace("  name: visionzip\n", "");
  const p = problemsOf(() => load({ "configs/run.yaml": text }));
  assert.deepEqual(p, [
    "output_dir: missing required key (expected a path to a file or folder) (configs/run.yaml)",
    "reducer.name: missing required key (expected one of visionzip | none | uniform | pool | random) (configs/run.yaml)",
    "optimizer.lr: missing required key (expected a positive number) (configs/run.yaml)",
  ]);
  const q = problemsOf(() => load({ "configs/run.yaml": BASE.replace("  llm: models/llm\n", "").replace("max_steps: 10", "micro_batch_size: 2") }));
  assert.deepEqual(q, [
    "model.llm: missing required key: set model.vision_tower and model.llm, or model.llava (configs/run.yaml)",
    "train.max_steps: missing required key: set train.epochs or train.max_steps (max_steps wins when both are set) (configs/run.yaml)",
  ]);
  const r = problemsOf(() => load({ "configs/run.yaml": BASE.replace("  train: data/train\n", "") }, "configs/run.yaml", { purpose: "train" }));
  assert.deepEqual(r, ["data.train: missing required key: training needs shards (a folder, glob or list) (configs/run.yaml)"]);
});

test("missing files: mustExist paths resolve against the working directory; hub ids and matching globs pass", () => {
  const files = {
    "configs/run.yaml": BASE.replace("data/train", "data/*.arrow"),
    "models/clip/config.json": "{}",
    "data/part-0.arrow": "",
  };
  const cwd = workspace(files);
  const p = problemsOf(() => loadConfig("configs/run.yaml", { cwd }));
  assert.deepEqual(p, [
    `model.llm: no such folder "models/llm" (relative paths resolve against the working directory ${cwd}) (configs/run.yaml)`,
  ]);
  // Not relative to the config file's folder: configs/models/llm would not count.
  mkdirSync(path.join(cwd, "configs/models/llm"), { recursive: true });
  assert.equal(problemsOf(() => loadConfig("configs/run.yaml", { cwd })).length, 1);
  mkdirSync(path.join(cwd, "models/llm"), { recursive: true });
  assert.equal(loadConfig("configs/run.yaml", { cwd }).data.train, "data/*.arrow");
  // A Hub id is not a local path: resolved (downloaded) at setup, not checked here.
  assert.equal(loadConfig("configs/run.yaml", { cwd, sets: ["model.llm=Qwen/Qwen2-0.5B-Instruct"] }).model.llm, "Qwen/Qwen2-0.5B-Instruct");
  const q = problemsOf(() => loadConfig("configs/run.yaml", { cwd, sets: ["data.train=[data/*.parquet, data/part-0.arrow]", "model.llm=./llm"] }));
  assert.deepEqual(q, [
    `model.llm: no such folder "./llm" (relative paths resolve against the working directory ${cwd}) (--set model.llm=./llm)`,
    `data.train[0]: no such file or folder "data/*.parquet" (relative paths resolve against the working directory ${cwd}) (--set data.train=[data/*.parquet, data/part-0.arrow])`,
  ]);
  const r = problemsOf(() => loadConfig("configs/run.yaml", { cwd, sets: ["model.vision_tower=models/clip/config.json"] }));
  assert.deepEqual(r, ['model.vision_tower: "models/clip/config.json" is a file, expected a folder (--set model.vision_tower=models/clip/config.json)']);
  // checkPaths: false skips the disk (the shipped recipes' placeholders).
  assert.equal(loadConfig("configs/run.yaml", { cwd, checkPaths: false, sets: ["model.llm=nowhere/at/all"] }).model.llm, "nowhere/at/all");
  // A missing config file.
  assert.deepEqual(problemsOf(() => loadConfig("configs/nope.yaml", { cwd })), ["configs/nope.yaml: no such file"]);
});

test("every problem is reported at once: a file with 3 problems gives 3 lines", () => {
  const text = BASE.replace("lr: 1.0e-3", "lr: -1").replace("max_steps: 10", "max_step: 10\n  epochs: 1") + "logging:\n  progress: yes\n";
  const cwd = workspace({ "configs/run.yaml": text });
  let err: unknown;
  try {
    validateConfigFile("configs/run.yaml", [], { cwd, checkPaths: false });
  } catch (e) {
    err = e;
  }
  assert.ok(err instanceof ConfigError);
  assert.deepEqual(err.problems, [
    'train.max_step: unknown key; did you mean "train.max_steps"? (configs/run.yaml)',
    "optimizer.lr: expected a positive number, got -1 (configs/run.yaml)",
    'logging.progress: expected one of auto | bar | lines | off, got "yes" (configs/run.yaml)',
  ]);
  assert.equal(err.message.split("\n").length, 4);
  assert.match(err.message, /^3 problems:/);
});

test("extends: chains merge (child wins, lists replace), problems name the file that set the key, cycles are found", () => {
  const files = {
    "configs/base/root.yaml": BASE.replace("lr: 1.0e-3", "lr: 1.0e-3\n  betas: [0.8, 0.9, 0.7]"),
    "configs/base/mid.yaml": "extends: root.yaml\noptimizer:\n  betas: [0.5, 0.6]\ntrain:\n  micro_batch_size: 2\n",
    "configs/run.yaml": "extends: base/mid.yaml\ntrain:\n  max_steps: 7\n",
  };
  const c = load(files);
  assert.equal(c.train.max_steps, 7);
  assert.equal(c.train.micro_batch_size, 2);
  assert.deepEqual(c.optimizer.betas, [0.5, 0.6]);
  assert.equal(c.optimizer.lr, 1e-3);
  assert.equal(c.output_dir, "runs/a");

  const bad = { ...files, "configs/base/mid.yaml": files["configs/base/mid.yaml"] + "seed: x\n" };
  assert.deepEqual(problemsOf(() => load(bad)), ['seed: expected a non-negative integer, got "x" (configs/base/mid.yaml)']);

  const cycle = { ...files, "configs/base/root.yaml": "extends: ../run.yaml\n" + BASE };
  assert.deepEqual(problemsOf(() => load(cycle)), [
    "extends: cycle configs/run.yaml -> configs/base/mid.yaml -> configs/base/root.yaml -> configs/run.yaml (configs/base/root.yaml)",
  ]);
  const self = { "configs/run.yaml": "extends: run.yaml\n" + BASE };
  assert.deepEqual(problemsOf(() => load(self)), ["extends: cycle configs/run.yaml -> configs/run.yaml (configs/run.yaml)"]);
  const missing = { "configs/run.yaml": "extends: nope.yaml\n" };
  assert.deepEqual(problemsOf(() => load(missing)), ['extends: no such file "configs/nope.yaml" (configs/run.yaml)']);
});

test("--set overrides nested keys and lists with YAML scalars", () => {
  const c = load({ "configs/run.yaml": BASE }, "configs/run.yaml", {
    sets: [
      "optimizer.lr=2e-5",
      "optimizer.betas=[0.8, 0.95]",
      "train.max_steps=5",
      "train.epochs=3",
      "data.train=[a/x.arrow,b/y.arrow]",
      "data.shuffle=false",
      "model.projector=checkpoints/p",
      "model.projector=null",
      "reducer.dominant=108",
      "reducer.contextual=20",
      "data.columns.image=img",
      "output_dir=runs/b=c",
    ],
  });
  assert.equal(c.optimizer.lr, 2e-5);
  assert.deepEqual(c.optimizer.betas, [0.8, 0.95]);
  assert.equal(c.train.max_steps, 5);
  assert.equal(c.train.epochs, 3);
  assert.deepEqual(c.data.train, ["a/x.arrow", "b/y.arrow"]);
  assert.equal(c.data.shuffle, false);
  assert.equal(c.model.projector, null, "later overrides win");
  assert.deepEqual([c.reducer.dominant, c.reducer.contextual, c.reducer.budget], [108, 20, 128]);
  assert.equal(c.data.columns.image, "img");
  assert.equal(c.output_dir, "runs/b=c", "only the first = splits key and value");

  const p = problemsOf(() =>
    load({ "configs/run.yaml": BASE }, "configs/run.yaml", { sets: ["optimizer.learning_rate=1", "train", "output_dir.x=1", "train.max_steps=[1"] }),
  );
  assert.equal(p.length, 4);
  assert.equal(p[0], 'expected key.path=value, got "train" (--set train)');
  assert.equal(p[1], 'output_dir: is "runs/a", not a mapping, so output_dir.x cannot be set (--set output_dir.x=1)');
  assert.match(p[2]!, /^value "\[1" is not valid YAML: .* \(--set train\.max_steps=\[1\)$/);
  assert.equal(p[3], 'optimizer.learning_rate: unknown key; did you mean "optimizer.lr"? (--set optimizer.learning_rate=1)');
});

test("${...} references: typed whole-string values, splices, env, defaults, after overrides; bad ones reported", () => {
  const text =
    BASE.replace("output_dir: runs/a", "output_dir: runs/${reducer.name}-${reducer.dominant}") +
    "logging:\n  every_steps: ${train.max_steps}\n" +
    "checkpoint:\n  every_steps: ${logging.every_steps}\n" +
    "seed: ${env:VZT_TEST_SEED}\n" +
    "eval:\n  benchmarks:\n    - name: vqav2\n      split: ${env:VZT_TEST_MISSING,fallback} $${literal} at seed ${seed}\n      data: ${output_dir}/eval\n";
  const c = load({ "configs/run.yaml": text }, "configs/run.yaml", { env: { VZT_TEST_SEED: "7" }, sets: ["train.max_steps=25"] });
  assert.equal(c.output_dir, "runs/visionzip-54");
  assert.equal(c.logging.every_steps, 25, "resolved after --set, keeps the number type");
  assert.equal(c.checkpoint.every_steps, 25, "references chain");
  assert.equal(c.seed, 7, "an env value is read as a YAML scalar");
  assert.equal(c.reducer.seed, 7);
  assert.equal(c.eval.benchmarks[0]!.split, "fallback ${literal} at seed 7");
  assert.equal(c.eval.benchmarks[0]!.data, "runs/visionzip-54/eval");

  const d = load({ "configs/run.yaml": BASE.replace("max_steps: 10", "max_steps: 10\n  eval_batches: ${logging.every_steps}") });
  assert.equal(d.train.eval_batches, 10, "an unwritten key resolves to its schema default");

  const bad =
    BASE.replace("output_dir: runs/a", "output_dir: runs/${trian.max_steps}") +
    "seed: ${env:VZT_TEST_MISSING}\nlogging:\n  every_steps: ${checkpoint.every_steps}\ncheckpoint:\n  every_steps: ${logging.every_steps}\n";
  const p = problemsOf(() => load({ "configs/run.yaml": bad }, "configs/run.yaml", { env: {} }));
  assert.deepEqual(p, [
    "output_dir: ${trian.max_steps}: no key trian.max_steps in this config; did you mean ${train.max_steps}? (configs/run.yaml)",
    "seed: ${env:VZT_TEST_MISSING}: environment variable VZT_TEST_MISSING is not set (give a default: ${env:VZT_TEST_MISSING,VALUE}) (configs/run.yaml)",
    "checkpoint.every_steps: ${logging.every_steps}: reference cycle logging.every_steps -> checkpoint.every_steps -> logging.every_steps (configs/run.yaml)",
  ]);
});

test("train.max_steps overrides train.epochs", () => {
  const c = load({ "configs/run.yaml": BASE.replace("max_steps: 10", "max_steps: 10\n  epochs: 3") });
  assert.deepEqual(trainLength(c.train), { maxSteps: 10 });
  const d = load({ "configs/run.yaml": BASE.replace("max_steps: 10", "epochs: 3") });
  assert.deepEqual(trainLength(d.train), { epochs: 3 });
});

test("cross-field checks: batch sizes, visionzip budget, reducer keys, eval data", () => {
  const p = problemsOf(() => load({ "configs/run.yaml": BASE }, "configs/run.yaml", { sets: ["train.micro_batch_size=4", "train.global_batch_size=6"] }));
  assert.deepEqual(p, ["train.global_batch_size: must be a multiple of train.micro_batch_size (4), got 6 (--set train.global_batch_size=6)"]);
  assert.equal(load({ "configs/run.yaml": BASE }, "configs/run.yaml", { sets: ["train.micro_batch_size=4", "train.global_batch_size=128"] }).train.global_batch_size, 128);

  const split = (sets: string[]) => {
    const r = load({ "configs/run.yaml": BASE }, "configs/run.yaml", { sets: ["reducer.dominant=null", "reducer.contextual=null", ...sets] }).reducer;
    return [r.dominant, r.contextual, r.budget];
  };
  assert.deepEqual(split(["reducer.budget=128"]), [108, 20, 128], "official split from the budget");
  assert.deepEqual(split(["reducer.budget=192"]), [162, 30, 192]);
  assert.deepEqual(split(["reducer.budget=100", "reducer.contextual=4"]), [96, 4, 100], "the other side is the rest of the budget");
  const q = problemsOf(() => load({ "configs/run.yaml": BASE }, "configs/run.yaml", { sets: ["reducer.budget=65"] }));
  assert.deepEqual(q, ["reducer.budget: must equal dominant + contextual = 54 + 10 = 64, got 65 (--set reducer.budget=65)"]);
  const r = problemsOf(() => load({ "configs/run.yaml": BASE }, "configs/run.yaml", { sets: ["reducer.contextual=null"] }));
  assert.deepEqual(r, ["reducer.contextual: visionzip needs reducer.dominant + reducer.contextual (e.g. 54 + 10), or reducer.budget (--set reducer.contextual=null)"]);
  const s = problemsOf(() => load({ "configs/run.yaml": BASE }, "configs/run.yaml", { sets: ["reducer.name=uniform"] }));
  assert.deepEqual(s, ['reducer.dominant: only reducer visionzip uses it (reducer.name is "uniform"); remove it or set it to null (configs/run.yaml)']);
  const u = load({ "configs/run.yaml": BASE }, "configs/run.yaml", { sets: ["reducer={name: random, budget: 32, seed: 5}"] }).reducer;
  assert.deepEqual(u, { name: "random", dominant: null, contextual: null, budget: 32, keep_cls: true, seed: 5 });
  const v = problemsOf(() => load({ "configs/run.yaml": BASE }, "configs/run.yaml", { sets: ["reducer={name: none, budget: 32}"] }));
  assert.deepEqual(v, ['reducer.budget: reducer "none" keeps every patch token; remove reducer.budget or set it to null (--set reducer={name: none, budget: 32})']);
  const w = problemsOf(() => load({ "configs/run.yaml": BASE }, "configs/run.yaml", { sets: ["train.eval_every_steps=5"] }));
  assert.deepEqual(w, ["data.eval: missing required key: train.eval_every_steps is set, so data.eval (held-out loss) or eval.benchmarks (accuracy) must say what to evaluate (configs/run.yaml)"]);
  const x = problemsOf(() => load({ "configs/run.yaml": BASE }, "configs/run.yaml", { sets: ["model.llava=llava-hf/llava-1.5-7b-hf"] }));
  assert.deepEqual(x, [
    "model.vision_tower: give model.llava (a LLaVA composite) or model.vision_tower + model.llm, not both (configs/run.yaml)",
    "model.llm: give model.llava (a LLaVA composite) or model.vision_tower + model.llm, not both (configs/run.yaml)",
  ]);
});

test("configHash: stable under key order and output dir, changed by lr; diffConfigs names the keys", () => {
  const reordered = `
optimizer: {lr: 1.0e-3}
train: {max_steps: 10}
data: {train: data/train}
reducer: {contextual: 10, dominant: 54, name: visionzip}
model: {llm: models/llm, vision_tower: models/clip}
output_dir: runs/a
`;
  const a = load({ "configs/run.yaml": BASE });
  const b = load({ "configs/run.yaml": reordered });
  assert.match(configHash(a), /^[0-9a-f]{64}$/);
  assert.equal(configHash(a), configHash(b));
  const moved = load({ "configs/run.yaml": BASE }, "configs/run.yaml", {
    sets: ["output_dir=elsewhere", "checkpoint.every_steps=5", "logging.every_steps=1", "runtime.backend=cpu", "data.prefetch=0"],
  });
  assert.equal(configHash(moved), configHash(a));
  const lr = load({ "configs/run.yaml": BASE }, "configs/run.yaml", { sets: ["optimizer.lr=2e-4"] });
  assert.notEqual(configHash(lr), configHash(a));
  assert.notEqual(configHash(load({ "configs/run.yaml": BASE }, "configs/run.yaml", { sets: ["seed=1"] })), configHash(a));
  // sha256 of JSON with sorted keys, minus the excluded keys (checked by an independent canonical form).
  const sorted = (v: unknown): unknown =>
    Array.isArray(v) ? v.map(sorted) : v && typeof v === "object" ? Object.fromEntries(Object.keys(v).sort().map((k) => [k, sorted((v as Record<string, unknown>)[k])])) : v;
  const { output_dir: _o, checkpoint: _c, logging: _l, runtime: _r, eval: _e, ...rest } = a;
  const kept = {
    ...rest,
    data: Object.fromEntries(Object.entries(a.data).filter(([k]) => k !== "eval" && k !== "prefetch")),
    train: Object.fromEntries(Object.entries(a.train).filter(([k]) => !["eval_every_steps", "eval_on_start", "eval_batches", "feature_cache"].includes(k))),
  };
  assert.equal(configHash(a), createHash("sha256").update(JSON.stringify(sorted(kept))).digest("hex"));

  assert.deepEqual(diffConfigs(a, lr), ["optimizer.lr: 0.001 -> 0.0002"]);
  assert.deepEqual(diffConfigs(a, moved), [
    "checkpoint.every_steps: 500 -> 5",
    "data.prefetch: 2 -> 0",
    "logging.every_steps: 10 -> 1",
    'output_dir: "runs/a" -> "elsewhere"',
    'runtime.backend: "auto" -> "cpu"',
  ]);
  assert.deepEqual(diffConfigs(a, moved, { hashedOnly: true }), []);
  assert.deepEqual(diffConfigs({ a: { b: [1, 2] } }, { a: { c: 1, b: [1, 3] } }), ["a.b: [1,2] -> [1,3]", "a.c: (absent) -> 1"]);
});

test("writeResolvedConfig writes <dir>/config.yaml that loads back to the same config and hash", () => {
  const text = BASE + "eval:\n  benchmarks:\n    - name: vqav2\n      data: vqav2.arrow\n      split: keep $${this} literal\n";
  const c = load({ "configs/run.yaml": text });
  const dir = mkdtempSync(path.join(tmpdir(), "vzt-resolved-"));
  const file = writeResolvedConfig(c, path.join(dir, "run"));
  assert.equal(file, path.join(dir, "run", "config.yaml"));
  const written = readFileSync(file, "utf8");
  assert.match(written, new RegExp(`^# config_hash: ${configHash(c)}$`, "m"));
  const back = loadConfig(file, { checkPaths: false, cwd: dir });
  assert.deepEqual(back, c);
  assert.equal(configHash(back), configHash(c));
  assert.equal(back.eval.benchmarks[0]!.split, "keep ${this} literal");
});

test("schema enums agree with the registries they mirror", async () => {
  const schema = await import("../../configs/schema.js");
  const { REDUCERS } = await import("../../reduce/reducer.js");
  const { PROJECTOR_TYPES } = await import("../../models/projector.js");
  const { TEMPLATE_NAMES } = await import("../../data/prompt.js");
  const { BACKENDS } = await import("../../core/backend.js");
  assert.deepEqual([...schema.REDUCER_NAMES].sort(), Object.keys(REDUCERS).sort());
  assert.deepEqual([...schema.PROJECTOR_TYPE_NAMES], [...PROJECTOR_TYPES]);
  assert.deepEqual([...schema.TEMPLATE_NAMES], [...TEMPLATE_NAMES]);
  assert.deepEqual([...schema.BACKEND_NAMES], [...BACKENDS]);
});

test("references resolve inside mappings that are list items (eval.benchmarks[i].data)", () => {
  const c = load({ "configs/run.yaml": BASE + "eval:\n  benchmarks:\n    - name: shapes_vqav2\n      data: ${output_dir}/eval\n    - name: shapes_pope\n      data: [\"${data.train}/pope\"]\n" });
  assert.equal(c.eval.benchmarks[0]!.data, "runs/a/eval");
  assert.deepEqual(c.eval.benchmarks[1]!.data, ["data/train/pope"]);
  assert.equal(c.eval.limit, 40); // schema default
});

test("--set reaches list items of a training config (eval.benchmarks.0.data / eval.benchmarks[0].data)", () => {
  const text = BASE + "eval:\n  benchmarks:\n    - name: shapes_vqav2\n      data: a\n    - name: shapes_pope\n      data: b\n";
  const c = load({ "configs/run.yaml": text }, "configs/run.yaml", { sets: ["eval.benchmarks.0.data=x/vqa", "eval.benchmarks[1].data=y/pope"] });
  assert.deepEqual(c.eval.benchmarks.map((b) => b.data), ["x/vqa", "y/pope"]);
});
