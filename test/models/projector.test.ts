// LLaVA projector: golden projector_tiny (LLaVA's builder) on wasm and cpu, loading from every supported source,
// byte-identical save -> load round trips in both namings, seeded PyTorch-default init, GELU gradient, no tensor growth.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, rm, writeFile, readFile, mkdir, copyFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { tf, setBackend } from "../../core/backend.js";
import { assertNoTensorLeak } from "../../core/memory.js";
import { encodeSafetensors, readSafetensors, writeSafetensors } from "../../models/safetensors.js";
import {
  buildProjector, gelu, loadProjector, projectorConfigJson, projectorTensors, type Projector, type ProjectorNaming,
} from "../../models/projector.js";
import { goldenDir, maxAbsDiff, readGoldenVector } from "../helpers.js";

const TINY = path.join(goldenDir(), "models", "projector_tiny");
const VEC = path.join(goldenDir(), "models", "vectors", "projector_tiny");

function goldenInput(): tf.Tensor3D {
  const g = readGoldenVector(path.join(VEC, "input.json"));
  return tf.tensor3d(g.data as Float32Array, g.shape as [number, number, number]);
}

async function checkGolden(p: Projector, what: string): Promise<void> {
  const x = goldenInput();
  const want = readGoldenVector(path.join(VEC, "output.json"));
  await assertNoTensorLeak(`${what}: apply`, async () => {
    const y = p.apply(x);
    assert.deepEqual(y.shape, want.shape);
    const d = maxAbsDiff(await y.data(), want.data);
    assert.ok(d <= 1e-5, `${what}: max abs diff ${d.toExponential(3)} > 1e-5`);
    y.dispose();
  });
  x.dispose();
}

/** Variable bytes by name, for exact comparisons. */
async function varBytes(p: Projector): Promise<Record<string, Uint8Array>> {
  const out: Record<string, Uint8Array> = {};
  for (const [n, v] of Object.entries(p.variables)) out[n] = new Uint8Array((await v.data()).slice().buffer);
  return out;
}

for (const backend of ["wasm", "cpu"] as const) {
  test(`projector_tiny golden (LLaVA builder, exact GELU) within 1e-5 (${backend})`, async () => {
    await setBackend(backend, { quiet: true });
    await assertNoTensorLeak("load + dispose", async () => (await loadProjector(TINY)).dispose());
    const p = await loadProjector(TINY);
    assert.deepEqual([p.type, p.inDim, p.outDim], ["mlp2x_gelu", 64, 64]);
    assert.deepEqual(Object.keys(p.variables).sort(), ["linear_1.bias", "linear_1.kernel", "linear_2.bias", "linear_2.kernel"]);
    for (const v of Object.values(p.variables)) assert.ok(v instanceof tf.Variable && v.trainable);
    await checkGolden(p, backend);
    for (let k = 0; k < 3; k++) await checkGolden(p, `${backend} #${k}`);
    const before = tf.memory().numTensors;
    p.dispose();
    assert.equal(tf.memory().numTensors, before - 4);
  });
}

test("loads from a .safetensors file, a folder with mm_projector.safetensors, and an HF llava composite folder", async () => {
  await setBackend("wasm", { quiet: true });
  const root = await mkdtemp(path.join(tmpdir(), "vzt-proj-"));
  const src = await readSafetensors(path.join(TINY, "model.safetensors"));
  try {
    // Single file (type and dims from names and shapes).
    const file = path.join(root, "mm_projector.safetensors");
    await copyFile(path.join(TINY, "model.safetensors"), file);
    let p = await loadProjector(file);
    await checkGolden(p, "file");
    p.dispose();
    // Folder holding mm_projector.safetensors and no config.json.
    p = await loadProjector(root);
    await checkGolden(p, "adapter folder");
    p.dispose();
    // HF composite folder: multi_modal_projector.linear_{1,2}, with stray language/vision tensors.
    const hf = path.join(root, "llava_hf");
    await mkdir(hf);
    const t = (n: string) => src.get(n)!;
    const stray = tf.ones([8]);
    await writeSafetensors(path.join(hf, "model.safetensors"), {
      "multi_modal_projector.linear_1.weight": t("model.mm_projector.0.weight"),
      "multi_modal_projector.linear_1.bias": t("model.mm_projector.0.bias"),
      "multi_modal_projector.linear_2.weight": t("model.mm_projector.2.weight"),
      "multi_modal_projector.linear_2.bias": t("model.mm_projector.2.bias"),
      "language_model.model.norm.weight": stray,
      "vision_tower.vision_model.post_layernorm.weight": stray,
    });
    stray.dispose();
    await writeFile(path.join(hf, "config.json"), JSON.stringify({
      model_type: "llava", projector_hidden_act: "gelu", vision_config: { hidden_size: 64 }, text_config: { hidden_size: 64, model_type: "llama" },
    }));
    p = await loadProjector(hf);
    await checkGolden(p, "llava-hf folder");
    p.dispose();
  } finally {
    for (const x of src.values()) x.dispose();
    await rm(root, { recursive: true, force: true });
  }
});

test("load errors name the tensor, both shapes, or the config key", async () => {
  await setBackend("wasm", { quiet: true });
  const root = await mkdtemp(path.join(tmpdir(), "vzt-proj-"));
  try {
    const bad = path.join(root, "bad_dims");
    await mkdir(bad);
    await copyFile(path.join(TINY, "model.safetensors"), path.join(bad, "model.safetensors"));
    await writeFile(path.join(bad, "config.json"), JSON.stringify({ mm_projector_type: "mlp2x_gelu", mm_hidden_size: 32, hidden_size: 64 }));
    await assert.rejects(loadProjector(bad), /tensor "model\.mm_projector\.0\.weight".*shape \[64,64\].*implies \[64,32\]/);

    await writeFile(path.join(bad, "config.json"), JSON.stringify({ mm_projector_type: "linear", mm_hidden_size: 64, hidden_size: 64 }));
    await assert.rejects(loadProjector(bad), /mm_projector_type "linear".*"mlp2x_gelu"/);

    await writeFile(path.join(bad, "config.json"), JSON.stringify({ mm_projector_type: "qformer", mm_hidden_size: 64, hidden_size: 64 }));
    await assert.rejects(loadProjector(bad), /mm_projector_type: "qformer" is not supported/);

    const p = buildProjector({ type: "mlp2x_gelu", inDim: 8, outDim: 4, seed: 1 });
    const ts = projectorTensors(p, "llava");
    const missing = { ...ts };
    delete missing["model.mm_projector.2.bias"];
    const extra = { ...ts, "model.mm_projector.4.weight": ts["model.mm_projector.2.weight"]! };
    await writeSafetensors(path.join(root, "missing.safetensors"), missing);
    await writeSafetensors(path.join(root, "extra.safetensors"), extra);
    await assert.rejects(loadProjector(path.join(root, "missing.safetensors")), /missing tensor "model\.mm_projector\.2\.bias"/);
    await assert.rejects(loadProjector(path.join(root, "extra.safetensors")), /unexpected tensor "model\.mm_projector\.4\.weight"/);
    for (const x of Object.values(ts)) x.dispose();
    const lin = buildProjector({ type: "linear", inDim: 8, outDim: 4, seed: 1 });
    assert.throws(() => projectorTensors(lin, "hf"), /HF LLaVA naming has no "linear" projector/);
    lin.dispose();
    p.dispose();
    await writeFile(path.join(root, "none.safetensors"), await encodeSafetensors({}));
    await assert.rejects(loadProjector(path.join(root, "none.safetensors")), /no projector tensors found/);
  } finally {
    await rm(root, { recursive: true, force: true });
  }
});

test("save -> load round trips are byte-identical in both namings (and for linear)", async () => {
  await setBackend("wasm", { quiet: true });
  const root = await mkdtemp(path.join(tmpdir(), "vzt-proj-"));
  try {
    const cases: [ProjectorNaming, Projector, string[]][] = [
      ["llava", buildProjector({ type: "mlp2x_gelu", inDim: 24, outDim: 40, seed: 7 }), ["model.mm_projector.0.bias", "model.mm_projector.0.weight", "model.mm_projector.2.bias", "model.mm_projector.2.weight"]],
      ["hf", buildProjector({ type: "mlp2x_gelu", inDim: 24, outDim: 40, seed: 8 }), ["multi_modal_projector.linear_1.bias", "multi_modal_projector.linear_1.weight", "multi_modal_projector.linear_2.bias", "multi_modal_projector.linear_2.weight"]],
      ["llava", buildProjector({ type: "linear", inDim: 24, outDim: 40, seed: 9 }), ["model.mm_projector.bias", "model.mm_projector.weight"]],
    ];
    for (const [naming, p, names] of cases) {
      const what = `${naming}/${p.type}`;
      const ts = projectorTensors(p, naming);
      assert.deepEqual(Object.keys(ts).sort(), names, what);
      const w = ts[names.find((n) => n.endsWith("weight"))!]!;
      assert.deepEqual(w.shape, [40, 24], `${what}: first weight is PyTorch [out, in]`);
      const file = path.join(root, `${naming}_${p.type}.safetensors`);
      await writeSafetensors(file, ts);
      for (const x of Object.values(ts)) x.dispose();
      const q = await loadProjector(file);
      assert.deepEqual([q.type, q.inDim, q.outDim], [p.type, 24, 40], what);
      assert.deepEqual(await varBytes(q), await varBytes(p), `${what}: variables after the round trip`);
      const again = projectorTensors(q, naming);
      assert.deepEqual(await encodeSafetensors(again), new Uint8Array(await readFile(file)), `${what}: re-saved file bytes`);
      for (const x of Object.values(again)) x.dispose();
      // The same tensors with the LLaVA config keys in a folder load the same way.
      const dir = path.join(root, `dir_${naming}_${p.type}`);
      await mkdir(dir);
      await copyFile(file, path.join(dir, "model.safetensors"));
      await writeFile(path.join(dir, "config.json"), JSON.stringify(projectorConfigJson(p)));
      const r = await loadProjector(dir);
      assert.deepEqual(await varBytes(r), await varBytes(p), `${what}: folder with config.json`);
      r.dispose();
      q.dispose();
      p.dispose();
    }
  } finally {
    await rm(root, { recursive: true, force: true });
  }
});

test("seeded init: PyTorch nn.Linear default distribution, same seed same bytes", async () => {
  await setBackend("wasm", { quiet: true });
  const a = buildProjector({ type: "mlp2x_gelu", inDim: 256, outDim: 512, seed: 42 });
  const b = buildProjector({ type: "mlp2x_gelu", inDim: 256, outDim: 512, seed: 42 });
  const c = buildProjector({ type: "mlp2x_gelu", inDim: 256, outDim: 512, seed: 43 });
  try {
    assert.deepEqual(await varBytes(a), await varBytes(b), "same seed, same bytes");
    const ab = await varBytes(a);
    const cb = await varBytes(c);
    for (const n of Object.keys(ab)) assert.notDeepEqual(ab[n], cb[n], `different seed, different ${n}`);
    assert.deepEqual(a.variables["linear_1.kernel"]!.shape, [256, 512]);
    assert.deepEqual(a.variables["linear_2.kernel"]!.shape, [512, 512]);
    const fanIn: Record<string, number> = { "linear_1.kernel": 256, "linear_1.bias": 256, "linear_2.kernel": 512, "linear_2.bias": 512 };
    for (const [n, v] of Object.entries(a.variables)) {
      const bound = 1 / Math.sqrt(fanIn[n]!);
      const d = await v.data();
      let max = 0, sum = 0, sq = 0;
      for (const x of d) {
        max = Math.max(max, Math.abs(x));
        sum += x;
        sq += x * x;
      }
      assert.ok(max <= Math.fround(bound), `${n}: |w| max ${max} > 1/sqrt(${fanIn[n]})`);
      const mean = sum / d.length;
      const std = Math.sqrt(sq / d.length - mean * mean);
      const wantStd = bound / Math.sqrt(3); // std of U(-b, b)
      const se = wantStd / Math.sqrt(d.length);
      assert.ok(Math.abs(mean) < 5 * se, `${n}: mean ${mean} not near 0 (se ${se})`);
      // Relative standard error of a uniform's sample std is about 0.447/sqrt(n); allow 5 of them (and 1% at least).
      assert.ok(Math.abs(std / wantStd - 1) < Math.max(0.01, 5 * 0.447 / Math.sqrt(d.length)), `${n}: std ${std} vs ${wantStd}`);
      if (d.length > 1000) assert.ok(max > 0.99 * bound, `${n}: draws fill the interval (max ${max} vs ${bound})`);
    }
  } finally {
    a.dispose();
    b.dispose();
    c.dispose();
  }
});

/** erf in float64 by its Maclaurin series (|x| <= 3 here: about 1e-13 accurate), independent of tfjs. */
function erf64(x: number): number {
  let term = x, sum = x;
  for (let n = 1; n < 200; n++) {
    term *= (-x * x) / n;
    const add = term / (2 * n + 1);
    sum += add;
    if (Math.abs(add) < 1e-17) break;
  }
  return (2 / Math.sqrt(Math.PI)) * sum;
}

for (const backend of ["wasm", "cpu"] as const) {
  test(`GELU is exact (erf) and differentiable: tf.grad vs analytic derivative and finite differences (${backend})`, async () => {
    await setBackend(backend, { quiet: true });
    const xs = [-4, -3, -2.5, -1.7, -1, -0.5, -0.1, 0, 0.1, 0.3, 0.8, 1.2, 2, 2.7, 4];
    const x = tf.tensor1d(xs);
    // Finite differences of the tfjs GELU itself (float32, h = 1e-2).
    const h = 1e-2;
    const outs = tf.tidy(() => [gelu(x), tf.grad((t: tf.Tensor) => tf.sum(gelu(t)))(x), gelu(tf.add(x, h)), gelu(tf.sub(x, h))]);
    const [y, dy, yp, ym] = (await Promise.all(outs.map((t) => t.data()))) as [Float32Array, Float32Array, Float32Array, Float32Array];
    for (const t of [x, ...outs]) t.dispose();
    for (let i = 0; i < xs.length; i++) {
      const v = xs[i]!;
      const exact = 0.5 * v * (1 + erf64(v / Math.SQRT2));
      const exactGrad = 0.5 * (1 + erf64(v / Math.SQRT2)) + (v * Math.exp(-v * v / 2)) / Math.sqrt(2 * Math.PI);
      assert.ok(Math.abs(y[i]! - exact) < 2e-6, `gelu(${v}) = ${y[i]} vs ${exact}`);
      assert.ok(Math.abs(dy[i]! - exactGrad) < 2e-6, `gelu'(${v}) = ${dy[i]} vs ${exactGrad}`);
      const fd = (yp[i]! - ym[i]!) / (2 * h);
      assert.ok(Math.abs(dy[i]! - fd) < 2e-4, `gelu'(${v}) = ${dy[i]} vs finite difference ${fd}`);
    }
    // The tanh approximation differs from exact GELU by more than the tolerance used above (this test can fail).
    const tanhApprox = 0.5 * 1 * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (1 + 0.044715)));
    assert.ok(Math.abs(tanhApprox - 0.5 * (1 + erf64(Math.SQRT1_2))) > 1e-4);
  });
}

test("projector gradients reach every variable and match finite differences; no tensor growth", async () => {
  await setBackend("wasm", { quiet: true });
  const p = buildProjector({ type: "mlp2x_gelu", inDim: 6, outDim: 5, seed: 3 });
  const x = tf.randomNormal([2, 3, 6], 0, 1, "float32", 11) as tf.Tensor3D;
  const r = tf.randomNormal([2, 3, 5], 0, 1, "float32", 12);
  const loss = () => tf.sum(tf.mul(p.apply(x), r)) as tf.Scalar;
  const set = (v: tf.Variable, data: Float32Array | Int32Array | Uint8Array) => tf.tidy(() => v.assign(tf.tensor(data, v.shape)));
  try {
    for (let k = 0; k < 3; k++) {
      await assertNoTensorLeak(`variableGrads #${k}`, () => {
        const { value, grads } = tf.variableGrads(loss);
        assert.deepEqual(Object.keys(grads).length, 4);
        value.dispose();
        for (const g of Object.values(grads)) g.dispose();
      });
    }
    const varList = Object.values(p.variables);
    const { value, grads } = tf.variableGrads(loss, varList);
    value.dispose();
    const h = 1e-2;
    for (const [name, v] of Object.entries(p.variables)) {
      const g = await grads[v.name]!.data();
      assert.ok(g.some((e) => e !== 0), `${name}: gradient is all zero`);
      const orig = await v.data();
      for (const i of [0, Math.floor(orig.length / 2), orig.length - 1]) {
        const f = async (delta: number) => {
          const w = orig.slice();
          w[i] = w[i]! + delta;
          set(v, w);
          return tf.tidy(loss).data().then((d) => d[0]!);
        };
        const fd = ((await f(h)) - (await f(-h))) / (2 * h);
        set(v, orig);
        assert.ok(Math.abs(fd - g[i]!) < 2e-3 * Math.max(1, Math.abs(fd)), `${name}[${i}]: grad ${g[i]} vs finite difference ${fd}`);
      }
    }
    for (const g of Object.values(grads)) g.dispose();
  } finally {
    x.dispose();
    r.dispose();
    p.dispose();
  }
});
