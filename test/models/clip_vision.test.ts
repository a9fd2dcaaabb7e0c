// CLIP vision tower: golden vectors from openai/CLIP (clip_tiny, clip_336) on wasm and cpu, weight-map errors,
// composite (llava, clip) folders, config dispatch on model_type, and no tensor growth across forwards.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, rm, writeFile, readFile, mkdir } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { tf, setBackend } from "../../core/backend.js";
import { ConfigError } from "../../core/errors.js";
import { assertNoTensorLeak } from "../../core/memory.js";
import { readSafetensors, writeSafetensors } from "../../models/safetensors.js";
import { classifyNames } from "../../models/weights.js";
import {
  CLIP_VISION_OUTSIDE_IGNORE, clipVisionComponent, loadVisionTower, parseClipVisionConfig, type VisionTower,
} from "../../models/clip_vision.js";
import { goldenDir, maxAbsDiff, readGoldenVector } from "../helpers.js";

const MODELS = path.join(goldenDir(), "models");
const TINY = path.join(MODELS, "clip_vision_tiny");
const V336 = path.join(MODELS, "clip_vision_336");
const VEC = path.join(MODELS, "vectors");
const REAL = path.join(goldenDir(), "real", "models");

const golden = (name: string) => readGoldenVector(path.join(VEC, name));

/** Asserts shape and max abs difference against a golden vector. */
async function near(what: string, t: tf.Tensor, name: string, tol: number): Promise<void> {
  const g = golden(name);
  assert.deepEqual(t.shape, g.shape, `${what}: shape`);
  const d = maxAbsDiff(await t.data(), g.data);
  assert.ok(d <= tol, `${what}: max abs diff ${d.toExponential(3)} > ${tol} vs ${name}`);
}

function tinyPixels(): tf.Tensor4D {
  const g = golden("clip_tiny/pixel_values.json");
  return tf.tensor4d(g.data as Float32Array, g.shape as [number, number, number, number]);
}

function dispose(o: Record<string, tf.Tensor>): void {
  for (const t of Object.values(o)) t.dispose();
}

/** The layer -2 checks of clip_tiny (hidden_states_3, CLS attention, keys) on an already-loaded tower. */
async function checkTinyLayerM2(tower: VisionTower, px: tf.Tensor4D): Promise<void> {
  const out = tower.forward(px);
  try {
    await near("hidden (layer -2)", out.hidden, "clip_tiny/hidden_states_3.json", 1e-4);
    await near("clsAttention", out.clsAttention, "clip_tiny/layer_m2_cls_attn.json", 1e-5);
    await near("keys per head", out.keys, "clip_tiny/layer_m2_keys_per_head.json", 1e-4);
    await near("keys head mean", out.keysMean, "clip_tiny/layer_m2_keys_head_mean.json", 1e-4);
    const merged = tf.tidy(() => tf.reshape(tf.transpose(out.keys, [0, 2, 1, 3]), [2, 17, 64]));
    await near("keys (heads merged)", merged, "clip_tiny/layer_m2_keys.json", 1e-4);
    merged.dispose();
  } finally {
    dispose({ ...out });
  }
}

for (const backend of ["wasm", "cpu"] as const) {
  test(`clip_tiny golden: hidden_states 0..4, layer -2 attention and keys, pooler (${backend})`, async () => {
    await setBackend(backend, { quiet: true });
    const tower = await loadVisionTower(TINY);
    const px = tinyPixels();
    try {
      assert.deepEqual(
        { h: tower.config.hidden, H: tower.config.heads, L: tower.config.layers, img: tower.config.imageSize, p: tower.config.patchSize, n: tower.config.numPositions },
        { h: 64, H: 4, L: 4, img: 56, p: 14, n: 17 },
      );
      for (let i = 0; i <= 4; i++) {
        const h = tower.hiddenState(px, i);
        await near(`hiddenState(${i})`, h, `clip_tiny/hidden_states_${i}.json`, 1e-4);
        h.dispose();
        const neg = tower.hiddenState(px, i - 5); // negative indexing counts from the end of the 5 entries
        await near(`hiddenState(${i - 5})`, neg, `clip_tiny/hidden_states_${i}.json`, 1e-4);
        neg.dispose();
        if (i >= 1) {
          const out = tower.forward(px, { layer: i });
          await near(`forward({layer: ${i}}).hidden`, out.hidden, `clip_tiny/hidden_states_${i}.json`, 1e-4);
          assert.deepEqual(out.clsAttention.shape, [2, 4, 17]);
          dispose({ ...out });
        }
      }
      await checkTinyLayerM2(tower, px);
      // The CLS row sums to 1 over all 17 keys (CLS key included).
      const out = tower.forward(px, { layer: -2 });
      const sums = await tf.tidy(() => tf.sum(out.clsAttention, -1)).data();
      for (const s of sums) assert.ok(Math.abs(s - 1) < 1e-5, `CLS attention row sums to ${s}`);
      dispose({ ...out });
      const pooled = tower.pooled(px);
      await near("pooled", pooled, "clip_tiny/pooler_output.json", 1e-4);
      pooled.dispose();
      assert.throws(() => tower.forward(px, { layer: 0 }), /hidden_states\[0\]/);
      assert.throws(() => tower.forward(px, { layer: 5 }), /out of range.*-5\.\.4/);
      assert.throws(() => tower.forward(px, { layer: -6 }), /out of range/);
      const wrong = tf.zeros([1, 3, 28, 28]) as tf.Tensor4D;
      assert.throws(() => tower.forward(wrong), /\[B, 3, 56, 56\].*1,3,28,28/);
      wrong.dispose();
      // No tensor growth: each forward leaves exactly its outputs, and disposing them restores the count.
      for (let k = 0; k < 3; k++) {
        await assertNoTensorLeak(`forward #${k}`, () => {
          const o = tower.forward(px);
          dispose({ ...o });
        });
      }
      await assertNoTensorLeak("hiddenState + pooled", () => {
        tower.hiddenState(px, 2).dispose();
        tower.pooled(px).dispose();
      });
      const before = tf.memory().numTensors;
      const o = tower.forward(px);
      assert.equal(tf.memory().numTensors, before + 4, "forward returns exactly 4 new tensors");
      dispose({ ...o });
    } finally {
      px.dispose();
      const before = tf.memory().numTensors;
      tower.dispose();
      assert.ok(tf.memory().numTensors < before, "dispose frees the weights");
    }
  });

  test(`clip_336 golden: 577 tokens, layer -2 hidden, CLS attention and keys (${backend})`, async () => {
    await setBackend(backend, { quiet: true });
    const tower = await loadVisionTower(V336);
    const read = await readSafetensors(path.join(VEC, "clip_336", "pixel_values.safetensors"));
    const px = read.get("pixel_values") as tf.Tensor4D;
    try {
      assert.equal(tower.config.numPositions, 577);
      await assertNoTensorLeak("clip_336 forward", async () => {
        const out = tower.forward(px, { layer: -2 });
        try {
          await near("hidden", out.hidden, "clip_336/hidden_states_1.json", 1e-4);
          await near("clsAttention", out.clsAttention, "clip_336/layer_m2_cls_attn.json", 1e-5);
          await near("keys per head", out.keys, "clip_336/layer_m2_keys_per_head.json", 1e-4);
          await near("keys head mean", out.keysMean, "clip_336/layer_m2_keys_head_mean.json", 1e-4);
        } finally {
          dispose({ ...out });
        }
      });
      if (backend === "wasm") {
        const h0 = tower.hiddenState(px, 0);
        await near("hidden_states_0", h0, "clip_336/hidden_states_0.json", 1e-4);
        h0.dispose();
        const pooled = tower.pooled(px);
        await near("pooled", pooled, "clip_336/pooler_output.json", 1e-4);
        pooled.dispose();
      }
    } finally {
      for (const t of read.values()) t.dispose();
      tower.dispose();
    }
  });
}

// ---- folders written from clip_vision_tiny ------------------------------------------------------------------------

async function tinyTensors(): Promise<Record<string, tf.Tensor>> {
  return Object.fromEntries(await readSafetensors(path.join(TINY, "model.safetensors")));
}

async function tinyConfig(): Promise<Record<string, unknown>> {
  return JSON.parse(await readFile(path.join(TINY, "config.json"), "utf8")) as Record<string, unknown>;
}

/** Writes config.json + model.safetensors into a fresh folder under `root`. */
async function writeModel(root: string, name: string, config: unknown, tensors: Record<string, tf.Tensor>): Promise<string> {
  const dir = path.join(root, name);
  await mkdir(dir, { recursive: true });
  await writeFile(path.join(dir, "config.json"), JSON.stringify(config));
  await writeSafetensors(path.join(dir, "model.safetensors"), tensors);
  return dir;
}

/** A safetensors file with one extra I64 tensor, built by hand (writeSafetensors writes F32/I32/BOOL only). */
async function writeWithI64(file: string, tensors: Record<string, tf.Tensor>, i64Name: string, i64: bigint[]): Promise<void> {
  const header: Record<string, unknown> = { __metadata__: { format: "pt" } };
  const parts: Uint8Array[] = [];
  let off = 0;
  for (const [name, t] of Object.entries(tensors)) {
    const bytes = new Uint8Array((await t.data<"float32">()).slice().buffer);
    header[name] = { dtype: "F32", shape: t.shape, data_offsets: [off, off + bytes.length] };
    parts.push(bytes);
    off += bytes.length;
  }
  const ib = new Uint8Array(new BigInt64Array(i64).buffer);
  header[i64Name] = { dtype: "I64", shape: [1, i64.length], data_offsets: [off, off + ib.length] };
  parts.push(ib);
  const json = new TextEncoder().encode(JSON.stringify(header));
  const len = new Uint8Array(8);
  new DataView(len.buffer).setBigUint64(0, BigInt(json.length), true);
  await writeFile(file, Buffer.concat([len, json, ...parts]));
}

test("weight-map errors name the tensor (and both shapes); load + dispose leaves no tensors", async () => {
  await setBackend("wasm", { quiet: true });
  const root = await mkdtemp(path.join(tmpdir(), "vzt-clip-"));
  const base = await tinyTensors();
  const cfg = await tinyConfig();
  try {
    await assertNoTensorLeak("load + dispose", async () => (await loadVisionTower(TINY)).dispose());
    const missing = { ...base };
    delete missing["vision_model.encoder.layers.2.self_attn.k_proj.bias"];
    const d1 = await writeModel(root, "missing", cfg, missing);
    await assert.rejects(loadVisionTower(d1), (e: Error) => {
      assert.match(e.message, /missing tensor "vision_model\.encoder\.layers\.2\.self_attn\.k_proj\.bias"/);
      return true;
    });

    const extraT = tf.zeros([3]);
    const d2 = await writeModel(root, "extra", cfg, { ...base, "vision_model.encoder.layers.1.self_attn.rotary.weight": extraT });
    await assert.rejects(loadVisionTower(d2), /unexpected tensor "vision_model\.encoder\.layers\.1\.self_attn\.rotary\.weight"/);

    const wrongT = tf.zeros([128, 32]);
    const d3 = await writeModel(root, "shape", cfg, { ...base, "vision_model.encoder.layers.0.mlp.fc1.weight": wrongT });
    await assert.rejects(loadVisionTower(d3), /tensor "vision_model\.encoder\.layers\.0\.mlp\.fc1\.weight".*shape \[128,32\].*implies \[128,64\]/);

    // A layer count in config.json larger than the checkpoint's names every missing tensor of layer 4.
    const d4 = await writeModel(root, "layers", { ...cfg, num_hidden_layers: 5 }, base);
    await assert.rejects(loadVisionTower(d4), /missing tensor "vision_model\.encoder\.layers\.4\.mlp\.fc2\.weight"/);
    extraT.dispose();
    wrongT.dispose();
  } finally {
    dispose(base);
    await rm(root, { recursive: true, force: true });
  }
});

test("layers after the selected one are never run (NaN weights in the last layer do not reach layer -2)", async () => {
  await setBackend("wasm", { quiet: true });
  const root = await mkdtemp(path.join(tmpdir(), "vzt-clip-"));
  const base = await tinyTensors();
  const nan = tf.fill([128, 64], NaN);
  try {
    const dir = await writeModel(root, "nan_last", await tinyConfig(), { ...base, "vision_model.encoder.layers.3.mlp.fc1.weight": nan });
    const tower = await loadVisionTower(dir);
    const px = tinyPixels();
    await checkTinyLayerM2(tower, px);
    const last = tower.hiddenState(px, -1);
    assert.ok(Number.isNaN((await last.data())[0]), "the poisoned last layer does produce NaN when it is run");
    last.dispose();
    px.dispose();
    tower.dispose();
  } finally {
    nan.dispose();
    dispose(base);
    await rm(root, { recursive: true, force: true });
  }
});

test("composite llava folder (vision_tower.vision_model.*, stray language_model tensor) gives the same outputs", async () => {
  await setBackend("wasm", { quiet: true });
  const root = await mkdtemp(path.join(tmpdir(), "vzt-clip-"));
  const base = await tinyTensors();
  const stray = tf.ones([64]);
  const proj = tf.zeros([64, 64]);
  try {
    const renamed: Record<string, tf.Tensor> = {};
    for (const [n, t] of Object.entries(base)) renamed[`vision_tower.${n}`] = t;
    renamed["language_model.model.norm.weight"] = stray;
    renamed["multi_modal_projector.linear_1.weight"] = proj;
    const { model_type: _, architectures: __, ...vision } = await tinyConfig();
    const config = { architectures: ["LlavaForConditionalGeneration"], model_type: "llava", vision_config: { ...vision, model_type: "clip_vision_model" }, text_config: { model_type: "llama" } };
    const dir = await writeModel(root, "llava", config, renamed);
    const tower = await loadVisionTower(dir);
    assert.equal(tower.config.prefix, "vision_tower.vision_model.");
    const px = tinyPixels();
    await checkTinyLayerM2(tower, px);
    px.dispose();
    tower.dispose();
  } finally {
    stray.dispose();
    proj.dispose();
    dispose(base);
    await rm(root, { recursive: true, force: true });
  }
});

test("clip model_type folder with text_model.* and an I64 position_ids buffer loads", async () => {
  await setBackend("wasm", { quiet: true });
  const root = await mkdtemp(path.join(tmpdir(), "vzt-clip-"));
  const base = await tinyTensors();
  const textT = tf.ones([5, 4]);
  const scale = tf.scalar(4.6);
  try {
    const { model_type: _, architectures: __, ...vision } = await tinyConfig();
    const dir = path.join(root, "clip");
    await mkdir(dir);
    await writeFile(path.join(dir, "config.json"), JSON.stringify({ architectures: ["CLIPModel"], model_type: "clip", vision_config: vision, text_config: { hidden_size: 4 } }));
    await writeWithI64(path.join(dir, "model.safetensors"), { ...base, "text_model.foo": textT, logit_scale: scale }, "vision_model.embeddings.position_ids", Array.from({ length: 17 }, (_, i) => BigInt(i)));
    const tower = await loadVisionTower(dir);
    assert.equal(tower.config.modelType, "clip");
    const px = tinyPixels();
    await checkTinyLayerM2(tower, px);
    px.dispose();
    tower.dispose();
  } finally {
    textT.dispose();
    scale.dispose();
    dispose(base);
    await rm(root, { recursive: true, force: true });
  }
});

test("config dispatch on model_type, HF defaults, and name classification of the real llava-1.5-7b-hf index", async () => {
  const real = JSON.parse(await readFile(path.join(REAL, "llava-hf_llava-1.5-7b-hf", "config.json"), "utf8")) as Record<string, unknown>;
  const cfg = parseClipVisionConfig(real);
  assert.deepEqual(
    { ...cfg },
    {
      modelType: "llava", hidden: 1024, intermediate: 4096, layers: 24, heads: 16, headDim: 64, imageSize: 336, patchSize: 14, numChannels: 3,
      numPositions: 577, layerNormEps: 1e-5, hiddenAct: "quick_gelu", prefix: "vision_tower.vision_model.",
    },
  );
  // Defaults for a bare clip_vision_model config: ViT-B/32.
  const d = parseClipVisionConfig({ model_type: "clip_vision_model" });
  assert.deepEqual([d.hidden, d.intermediate, d.layers, d.heads, d.imageSize, d.patchSize, d.numPositions, d.hiddenAct], [768, 3072, 12, 12, 224, 32, 50, "quick_gelu"]);
  assert.equal(parseClipVisionConfig({ model_type: "clip", vision_config: { hidden_act: "gelu" } }).hiddenAct, "gelu");
  // Dispatch is on model_type only: a path or architecture saying "clip" does not matter.
  assert.throws(() => parseClipVisionConfig({ model_type: "llama", architectures: ["CLIPVisionModel"] }), (e: Error) => e instanceof ConfigError && /model_type: "llama"/.test(e.message));
  const orig = JSON.parse(await readFile(path.join(REAL, "liuhaotian_llava-v1.5-7b", "config.json"), "utf8")) as Record<string, unknown>;
  assert.throws(() => parseClipVisionConfig(orig), /vision_config.*mm_vision_tower \("openai\/clip-vit-large-patch14-336"\)/);
  assert.throws(() => parseClipVisionConfig({ model_type: "clip_vision_model", hidden_size: 60, num_attention_heads: 8, hidden_act: "relu" }), (e: Error) =>
    e instanceof ConfigError && /not divisible/.test(e.message) && /hidden_act: "relu"/.test(e.message));

  const index = JSON.parse(await readFile(path.join(REAL, "llava-hf_llava-1.5-7b-hf", "model.safetensors.index.json"), "utf8")) as { weight_map: Record<string, string> };
  const names = Object.keys(index.weight_map);
  const status = classifyNames(names, [clipVisionComponent(cfg)], CLIP_VISION_OUTSIDE_IGNORE);
  const vision = names.filter((n) => n.startsWith("vision_tower."));
  assert.equal(vision.length, 391);
  for (const n of vision) assert.equal(status.get(n)?.status, "mapped", n);
  assert.equal(status.get("vision_tower.vision_model.encoder.layers.23.self_attn.k_proj.bias")?.status, "mapped");
  for (const n of names.filter((n) => !n.startsWith("vision_tower."))) assert.equal(status.get(n)?.status, "unknown", n);
});
