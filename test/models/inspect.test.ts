// `vzt inspect` on the real published configs and indexes: every tensor name of both LLaVA-1.5 checkpoints maps or
// is a documented extra, parameter counts equal the published ones, and unknown names are reported.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { copyFile, mkdtemp, readFile, readdir, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { inspectModel } from "../../models/inspect.js";
import { goldenDir, repoRoot } from "../helpers.js";

const real = (name: string) => path.join(goldenDir(), "real/models", name);

test("llava-hf/llava-1.5-7b-hf: all 686 index names map, 7.06B parameters split as published", async () => {
  const r = await inspectModel(real("llava-hf_llava-1.5-7b-hf"));
  assert.equal(r.family, "llava");
  assert.equal(r.tensors, 686);
  assert.deepEqual(r.unknown, []);
  assert.equal(r.mapped + r.ignored, 686);
  const by = Object.fromEntries(r.components.map((c) => [c.name, c.parameters]));
  // CLIP ViT-L/14-336 vision tower: 303,507,456 parameters (published size of the vision model);
  // projector: 1024*4096 + 4096 + 4096*4096 + 4096; Vicuna-7B with the 32064-token padded vocab.
  assert.equal(by.vision_tower, 303_507_456);
  assert.equal(by.projector, 1024 * 4096 + 4096 + 4096 * 4096 + 4096);
  const llama7b = (vocab: number) => 2 * vocab * 4096 + 32 * (4 * 4096 * 4096 + 3 * 4096 * 11008 + 2 * 4096) + 4096;
  assert.equal(by.language_model, llama7b(32064));
});

test("liuhaotian/llava-v1.5-7b: all 327 names map or are RoPE buffers; the vision tower is external", async () => {
  const r = await inspectModel(real("liuhaotian_llava-v1.5-7b"));
  assert.equal(r.family, "llava-original");
  assert.equal(r.tensors, 327);
  assert.deepEqual(r.unknown, []);
  assert.equal(r.ignored, 32); // model.layers.N.self_attn.rotary_emb.inv_freq
  assert.ok(r.notes.some((n) => n.includes("openai/clip-vit-large-patch14-336")));
  assert.ok(r.notes.some((n) => n.includes("pickles")));
});

test("Qwen2 configs: 494,032,768 parameters for Qwen2/Qwen2.5-0.5B (tied embeddings)", async () => {
  for (const name of ["qwen2-0.5b_resaved", "qwen2.5-0.5b-instruct_resaved"]) {
    const r = await inspectModel(real(name));
    assert.equal(r.family, "qwen2", name);
    assert.equal(r.parameters, 494_032_768, name);
  }
});

test("every real config.json in golden/real/models is understood", async () => {
  for (const name of await readdir(path.join(goldenDir(), "real/models"))) {
    const files = await readdir(real(name));
    if (!files.includes("config.json")) continue; // e.g. a LoRA adapter folder
    const r = await inspectModel(real(name));
    assert.deepEqual(r.unknown, [], name);
    assert.ok(r.parameters > 0, name);
  }
});

test("an index name no weight map knows is listed as unknown", async () => {
  const dir = await mkdtemp(path.join(tmpdir(), "vzt-inspect-"));
  try {
    await copyFile(path.join(real("llava-hf_llava-1.5-7b-hf"), "config.json"), path.join(dir, "config.json"));
    const index = JSON.parse(await readFile(path.join(real("llava-hf_llava-1.5-7b-hf"), "model.safetensors.index.json"), "utf8")) as { weight_map: Record<string, string> };
    index.weight_map["language_model.model.layers.0.self_attn.q_norm.weight"] = "model-00001-of-00003.safetensors";
    index.weight_map["vision_tower.vision_model.encoder.layers.24.mlp.fc1.weight"] = "model-00001-of-00003.safetensors";
    await writeFile(path.join(dir, "model.safetensors.index.json"), JSON.stringify(index));
    const r = await inspectModel(dir);
    assert.deepEqual(r.unknown.sort(), ["language_model.model.layers.0.self_attn.q_norm.weight", "vision_tower.vision_model.encoder.layers.24.mlp.fc1.weight"]);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test("vzt inspect --json prints family, mapped, ignored and unknown", () => {
  const r = spawnSync(process.execPath, [path.join(repoRoot(), "dist/cli.js"), "inspect", real("llava-hf_llava-1.5-7b-hf"), "--json"], { encoding: "utf8" });
  assert.equal(r.status, 0, r.stderr);
  const j = JSON.parse(r.stdout) as { family: string; mapped: number; ignored: number; unknown: string[] };
  assert.equal(j.family, "llava");
  assert.equal(j.mapped + j.ignored, 686);
  assert.deepEqual(j.unknown, []);
});
