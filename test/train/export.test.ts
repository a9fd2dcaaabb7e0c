// Export: a checkpoint holding the golden projector_tiny (LLaVA's builder) exported in LLaVA and HF LLaVA names gives
// exactly the golden file's tensor bytes under the right names ([out, in]); loadProjector(DIR) reproduces the golden
// output (1e-5) and the checkpoint projector's output exactly, on wasm and cpu; config.json carries the spec, reducer,
// budget, base models and source step; non-square and `linear` projectors; errors.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { tf, setBackend } from "../../core/backend.js";
import { buildProjector, loadProjector, projectorTensors, type Projector } from "../../models/projector.js";
import { readSafetensors } from "../../models/safetensors.js";
import { saveCheckpoint, type TrainStateInput } from "../../train/checkpoint.js";
import { exportProjector, type ExportMeta } from "../../train/export.js";
import { goldenDir, maxAbsDiff, readGoldenVector } from "../helpers.js";

const TINY = path.join(goldenDir(), "models", "projector_tiny");
const VEC = path.join(goldenDir(), "models", "vectors", "projector_tiny");
const HF_NAME: Record<string, string> = {
  "model.mm_projector.0.weight": "multi_modal_projector.linear_1.weight",
  "model.mm_projector.0.bias": "multi_modal_projector.linear_1.bias",
  "model.mm_projector.2.weight": "multi_modal_projector.linear_2.weight",
  "model.mm_projector.2.bias": "multi_modal_projector.linear_2.bias",
};

function stateOf(p: Projector): TrainStateInput {
  return {
    epoch: 1,
    dataCursor: { row: 5 },
    rng: {},
    configHash: "cfg-hash-1",
    config: {},
    metrics: { loss: 0.5 },
    projector: { type: p.type, inDim: p.inDim, outDim: p.outDim },
    reducer: { name: "visionzip", dominant: 54, contextual: 10, budget: null, keep_cls: true },
    models: { llava: null, visionTower: "openai/clip-vit-large-patch14-336", llm: "lmsys/vicuna-7b-v1.5", projector: null },
  };
}

/** Saves `p` as checkpoint `step` of `out` (optimizer state: one zero tensor). */
async function checkpointOf(out: string, p: Projector, step: number): Promise<string> {
  const proj = projectorTensors(p, "llava");
  const opt = { "linear_1.kernel.exp_avg": tf.zeros([2]) };
  const r = await saveCheckpoint(out, { step, projectorTensors: proj, optimizerTensors: opt, state: stateOf(p) });
  for (const t of [...Object.values(proj), ...Object.values(opt)]) t.dispose();
  return r.dir;
}

async function bytesOf(t: tf.Tensor): Promise<Buffer> {
  const d = await t.data();
  return Buffer.from(d.buffer, d.byteOffset, d.byteLength);
}

for (const backend of ["wasm", "cpu"] as const) {
  test(`exports the golden projector in LLaVA and HF names: golden bytes, golden output, exact apply (${backend})`, async () => {
    await setBackend(backend, { quiet: true });
    const root = await mkdtemp(path.join(tmpdir(), "vzt-export-"));
    const golden = await readSafetensors(path.join(TINY, "model.safetensors")); // PyTorch state dict, [out, in]
    const before = tf.memory().numTensors;
    try {
      const src = await loadProjector(TINY);
      const runDir = path.join(root, "run");
      const ckpt = await checkpointOf(runDir, src, 40);
      const g = readGoldenVector(path.join(VEC, "input.json"));
      const want = readGoldenVector(path.join(VEC, "output.json"));
      const x = tf.tensor3d(g.data as Float32Array, g.shape as [number, number, number]);
      const ref = src.apply(x);
      for (const format of ["llava", "hf"] as const) {
        const out = path.join(root, `export_${format}`);
        const r = await exportProjector({ checkpoint: format === "llava" ? ckpt : "latest", outputDir: runDir, format, out });
        assert.equal(r.file, path.join(out, "mm_projector.safetensors"));
        const back = await readSafetensors(r.file);
        const names = Object.keys(HF_NAME).map((n) => (format === "llava" ? n : HF_NAME[n]!));
        assert.deepEqual([...back.keys()].sort(), [...names].sort(), format);
        for (const [llavaName, t] of golden) {
          const name = format === "llava" ? llavaName : HF_NAME[llavaName]!;
          assert.deepEqual(back.get(name)!.shape, t.shape, `${format} ${name}`);
          assert.ok((await bytesOf(back.get(name)!)).equals(await bytesOf(t)), `${format} ${name}: bytes differ from the golden ${llavaName}`);
        }
        for (const t of back.values()) t.dispose();

        const p = await loadProjector(out);
        assert.deepEqual([p.type, p.inDim, p.outDim], ["mlp2x_gelu", 64, 64]);
        const y = p.apply(x);
        const d = maxAbsDiff(await y.data(), want.data);
        assert.ok(d <= 1e-5, `${format}: max abs diff to the golden output ${d.toExponential(3)}`);
        assert.ok((await bytesOf(y)).equals(await bytesOf(ref)), `${format}: output differs from the checkpoint projector's`);
        y.dispose();
        p.dispose();

        const meta = JSON.parse(await readFile(path.join(out, "config.json"), "utf8")) as ExportMeta;
        assert.deepEqual(meta, r.meta);
        assert.equal(meta.mm_projector_type, "mlp2x_gelu");
        assert.equal(meta.mm_hidden_size, 64);
        assert.equal(meta.hidden_size, 64);
        assert.equal(meta.mm_vision_tower, "openai/clip-vit-large-patch14-336");
        assert.equal(meta.projector_naming, format);
        assert.deepEqual(meta.reducer, { name: "visionzip", dominant: 54, contextual: 10, budget: 64, keep_cls: true });
        assert.deepEqual(meta.base_models, { llava: null, vision_tower: "openai/clip-vit-large-patch14-336", llm: "lmsys/vicuna-7b-v1.5", projector_init: null });
        assert.equal(meta.source.output_dir, runDir);
        assert.equal(meta.source.checkpoint, ckpt);
        assert.equal(meta.source.step, 40);
        assert.equal(meta.source.epoch, 1);
        assert.equal(meta.source.config_hash, "cfg-hash-1");
        assert.match(meta.exported_by.package, /^\d+\.\d+\.\d+/);
      }
      x.dispose();
      ref.dispose();
      src.dispose();
      assert.equal(tf.memory().numTensors, before, "no tensors left behind");
    } finally {
      for (const t of golden.values()) t.dispose();
      await rm(root, { recursive: true, force: true });
    }
  });
}

test("non-square and linear projectors: [out, in] shapes, LLaVA names; hf refuses linear; bad inputs are named", async () => {
  await setBackend("wasm", { quiet: true });
  const root = await mkdtemp(path.join(tmpdir(), "vzt-export-"));
  try {
    const p = buildProjector({ type: "mlp2x_gelu", inDim: 8, outDim: 6, seed: 5 });
    const run = path.join(root, "run");
    await checkpointOf(run, p, 3);
    const older = buildProjector({ type: "mlp2x_gelu", inDim: 8, outDim: 6, seed: 6 });
    await checkpointOf(run, older, 1); // older step, saved later
    older.dispose();
    const r = await exportProjector({ checkpoint: "latest", outputDir: run, format: "hf", out: path.join(root, "hf") });
    assert.equal(r.meta.source.step, 3, "latest is the highest step");
    const back = await readSafetensors(r.file);
    assert.deepEqual(back.get("multi_modal_projector.linear_1.weight")!.shape, [6, 8]);
    assert.deepEqual(back.get("multi_modal_projector.linear_2.weight")!.shape, [6, 6]);
    // linear_1.weight is the kernel transposed: element [o, i] = kernel[i, o].
    const w = await back.get("multi_modal_projector.linear_1.weight")!.data();
    const k = await p.variables["linear_1.kernel"]!.data();
    for (const [o, i] of [[0, 0], [1, 0], [0, 1], [5, 7], [2, 6]] as const) assert.equal(w[o * 8 + i], k[i * 6 + o], `[${o}, ${i}]`);
    for (const t of back.values()) t.dispose();
    assert.deepEqual([r.meta.mm_hidden_size, r.meta.hidden_size], [8, 6]);

    const lin = buildProjector({ type: "linear", inDim: 8, outDim: 6, seed: 7 });
    const linRun = path.join(root, "lin");
    const linCkpt = await checkpointOf(linRun, lin, 2);
    const rl = await exportProjector({ checkpoint: linCkpt, format: "llava", out: path.join(root, "lin_llava") });
    const lb = await readSafetensors(rl.file);
    assert.deepEqual([...lb.keys()].sort(), ["model.mm_projector.bias", "model.mm_projector.weight"]);
    assert.deepEqual(lb.get("model.mm_projector.weight")!.shape, [6, 8]);
    for (const t of lb.values()) t.dispose();
    assert.equal(rl.meta.mm_projector_type, "linear");
    const q = await loadProjector(path.join(root, "lin_llava"));
    assert.equal(q.type, "linear");
    q.dispose();
    await assert.rejects(exportProjector({ checkpoint: linCkpt, format: "hf", out: path.join(root, "lin_hf") }), /HF LLaVA naming has no "linear" projector/);

    await assert.rejects(exportProjector({ checkpoint: "latest", format: "llava", out: path.join(root, "x") }), /"latest" needs the output folder/);
    await assert.rejects(exportProjector({ checkpoint: "latest", outputDir: path.join(root, "empty"), format: "llava", out: path.join(root, "x") }), /no complete checkpoint/);
    await assert.rejects(exportProjector({ checkpoint: linCkpt, format: "onnx" as "llava", out: path.join(root, "x") }), /format must be one of llava, hf, got "onnx"/);
    // A state whose spec disagrees with the tensors is refused.
    const proj = projectorTensors(p, "llava");
    const opt = { m: tf.zeros([1]) };
    const bad = await saveCheckpoint(path.join(root, "bad"), { step: 1, projectorTensors: proj, optimizerTensors: opt, state: { ...stateOf(p), projector: { type: "mlp2x_gelu", inDim: 8, outDim: 4 } } });
    for (const t of [...Object.values(proj), ...Object.values(opt)]) t.dispose();
    await assert.rejects(exportProjector({ checkpoint: bad.dir, format: "llava", out: path.join(root, "x") }), /train_state\.json says projector mlp2x_gelu 8->4 but projector\.safetensors holds mlp2x_gelu 8->6/);
    p.dispose();
    lin.dispose();
  } finally {
    await rm(root, { recursive: true, force: true });
  }
});
