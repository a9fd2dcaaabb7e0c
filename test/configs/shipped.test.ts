// Every YAML recipe shipped under configs/ validates (the folder is listed, so new recipes are covered), starts
// with a header saying how to run it, and fails path checking only on paths (data and models not present here).
// The known recipes are also checked against the settings they document.
import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import path from "node:path";
import { test } from "node:test";
import { ConfigError } from "../../core/errors.js";
import { loadConfig, validateConfigFile } from "../../configs/load.js";
import type { RunConfig } from "../../configs/schema.js";
import { repoRoot } from "../helpers.js";

const root = repoRoot();
const files = readdirSync(path.join(root, "configs"))
  .filter((f) => /\.ya?ml$/.test(f))
  .sort()
  .map((f) => `configs/${f}`);

function load(file: string): RunConfig {
  return loadConfig(file, { cwd: root, checkPaths: false });
}

test("configs/ holds the shipped recipes", () => {
  for (const f of ["demo", "llava-1.5-7b-visionzip-64", "llava-1.5-7b-visionzip-128", "llava-1.5-7b-visionzip-192", "qwen2-0.5b-visionzip-64"]) {
    assert.ok(files.includes(`configs/${f}.yaml`), `configs/${f}.yaml is missing`);
  }
});

for (const file of files) {
  test(`${file} validates and documents how to run it`, () => {
    const cfg = validateConfigFile(file, [], { cwd: root, checkPaths: false });
    assert.equal(typeof cfg.output_dir, "string");
    const text = readFileSync(path.join(root, file), "utf8");
    const header = text.split("\n").filter((l) => l.startsWith("#")).join("\n");
    assert.match(text, new RegExp(`^# ${path.basename(file)}: `), "first line names the file and says what it is");
    assert.match(header, /vzt (train|eval) --config configs\//, "the header shows how to run it");
    if (!/^extends:/m.test(text)) assert.match(header, /--set /, "the header shows how to override a key");
    // With path checks on, the only problems allowed are missing paths (models and data not present here).
    try {
      validateConfigFile(file, [], { cwd: root });
    } catch (e) {
      assert.ok(e instanceof ConfigError);
      for (const p of e.problems) assert.match(p, /: no such (file or folder|folder|file) "/, p);
    }
  });
}

test("demo.yaml: tiny models and shapes data, VisionZip 54 + 10, seed 0, short run into checkpoints/demo", () => {
  const c = load("configs/demo.yaml");
  assert.equal(c.output_dir, "checkpoints/demo");
  assert.equal(c.seed, 0);
  assert.equal(c.model.llava, "checkpoints/tiny/llava");
  assert.match(c.data.train as string, /^checkpoints\/shapes\/train$/);
  assert.deepEqual([c.reducer.name, c.reducer.dominant, c.reducer.contextual, c.reducer.budget], ["visionzip", 54, 10, 64]);
  assert.ok(c.train.max_steps !== null && c.train.max_steps <= 200, "a short run");
  assert.ok(c.data.max_length <= 512, "fits the tiny LLM's 512 positions");
});

test("llava-1.5-7b-visionzip-64/128/192: the VisionZip efficient-tuning setting with LLaVA-1.5 finetune hyperparameters", () => {
  const splits = { 64: [54, 10], 128: [108, 20], 192: [162, 30] } as const;
  for (const [budget, [d, c]] of Object.entries(splits)) {
    const cfg = load(`configs/llava-1.5-7b-visionzip-${budget}.yaml`);
    assert.equal(cfg.model.llava, "llava-hf/llava-1.5-7b-hf");
    assert.equal(cfg.model.projector, "llava-hf/llava-1.5-7b-hf", "starts from the released projector");
    assert.equal(cfg.model.vision_layer, -2);
    assert.equal(cfg.model.template, "vicuna_v1");
    assert.deepEqual([cfg.reducer.name, cfg.reducer.dominant, cfg.reducer.contextual, cfg.reducer.budget], ["visionzip", d, c, Number(budget)]);
    assert.equal(cfg.optimizer.lr, 2e-5);
    assert.equal(cfg.optimizer.weight_decay, 0);
    assert.equal(cfg.train.global_batch_size, 128);
    assert.equal(cfg.train.epochs, 1);
    assert.equal(cfg.train.max_steps, null);
    assert.deepEqual([cfg.schedule.name, cfg.schedule.warmup_ratio], ["cosine", 0.03]);
    assert.equal(cfg.data.image_aspect_ratio, "pad");
    assert.equal(cfg.data.max_length, 2048);
    assert.equal(cfg.output_dir, `checkpoints/llava-1.5-7b-visionzip-${budget}`);
  }
});

test("qwen2-0.5b-visionzip-64: CLIP ViT-L/14-336 + Qwen2-0.5B-Instruct, fresh projector at the pretrain LR", () => {
  const c = load("configs/qwen2-0.5b-visionzip-64.yaml");
  assert.equal(c.model.vision_tower, "openai/clip-vit-large-patch14-336");
  assert.equal(c.model.llm, "Qwen/Qwen2-0.5B-Instruct");
  assert.equal(c.model.projector, null);
  assert.equal(c.model.projector_type, "mlp2x_gelu");
  assert.equal(c.model.template, "chat_template");
  assert.deepEqual([c.reducer.dominant, c.reducer.contextual], [54, 10]);
  assert.equal(c.optimizer.lr, 1e-3);
});
