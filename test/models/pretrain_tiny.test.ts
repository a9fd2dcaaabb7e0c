// pretrain-tiny: the HF re-layout of trained LLM weights is exact (known answer: make-tiny's own tensors), a few
// updates on a tiny pretraining set lower the loss, the same seed writes the same bytes (another seed does not),
// the tower and the untrained projector are kept, the folders load through loadVlm, and a second run is refused.
import { test, after } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { fileHashes } from "../helpers.js";
import { tmpdir } from "node:os";
import path from "node:path";
import { tf, setBackend } from "../../core/backend.js";
import { ConfigError } from "../../core/errors.js";
import { assertNoTensorLeak } from "../../core/memory.js";
import { loadLlmWeights, disposeLlmWeights } from "../../models/llama_weights.js";
import { readLlmConfig } from "../../models/llm_config.js";
import { loadVlm } from "../../models/llava.js";
import { loadLanguageModel } from "../../models/llama.js";
import { makeTiny } from "../../models/make_tiny.js";
import { CAPTION_QUESTION, llmHfTensors, parseTokenSets, pretrainTiny, pretrainingData, type PretrainOptions, type PretrainResult } from "../../models/pretrain_tiny.js";
import { POSITIONS } from "../../data/shapes.js";
import { loadTokenizer } from "../../data/tokenizer.js";
import { readSafetensors } from "../../models/safetensors.js";
import { openTensorSource } from "../../models/weights.js";

const tmp = await mkdtemp(path.join(tmpdir(), "vzt-pretrain-tiny-"));
after(() => rm(tmp, { recursive: true, force: true }));

/** 2 scenes (6 conversations), batch 6: every update sees the whole set, so the loss must fall. */
const SMALL: Omit<PretrainOptions, "seed"> = { steps: 6, batchSize: 6, images: 2, lr: 1e-2, warmupSteps: 0, encodeBatch: 2 };

function sameValues(a: tf.Tensor, b: tf.Tensor, what: string): void {
  assert.deepEqual(a.shape, b.shape, `${what}: shape`);
  assert.deepEqual(Array.from(a.dataSync()), Array.from(b.dataSync()), `${what}: values`);
}

for (const backend of ["wasm", "cpu"] as const) {
  test(`[${backend}] llmHfTensors writes back exactly the HF tensors that were loaded`, async () => {
    await setBackend(backend, { quiet: true });
    const dir = path.join(tmp, `relayout-${backend}`);
    await makeTiny(dir, { seed: 5 });
    const llm = path.join(dir, "llm");
    const cfg = await readLlmConfig(llm);
    const original = await readSafetensors(path.join(llm, "model.safetensors"));
    const w = await loadLlmWeights(await openTensorSource(llm), cfg);
    const before = tf.memory().numTensors;
    const back = llmHfTensors(cfg, w, "language_model.");
    try {
      assert.equal(tf.memory().numTensors, before + Object.keys(back).length, "only the returned tensors are new");
      assert.deepEqual(Object.keys(back).sort(), [...original.keys()].map((k) => "language_model." + k).sort());
      for (const [k, t] of original) sameValues(back["language_model." + k]!, t, k);
    } finally {
      tf.dispose([...original.values(), ...Object.values(back)]);
      disposeLlmWeights(w);
    }
  });
}

test("pretraining data: two questions and a caption per scene, in-vocabulary, from a seed other than the demo's", async () => {
  const d = pretrainingData(0, 3);
  assert.equal(d.scenes.length, 3);
  assert.equal(d.items.length, 9);
  assert.equal(pretrainingData(0, 3, undefined, false).items.length, 6);
  for (const it of d.items) assert.ok(it.image >= 0 && it.image < 3 && it.answer.length > 0);
  const captions = d.items.filter((it) => it.question === CAPTION_QUESTION);
  assert.equal(captions.length, 3);
  captions.forEach((c, i) => {
    const sc = d.scenes[i]!;
    assert.equal(c.image, i);
    assert.equal(c.answer, sc.shapes.map((s) => `${s.color} ${s.kind} ${POSITIONS[s.cell]}`).join(" , "));
  });
  const dir = path.join(tmp, "vocab");
  await makeTiny(dir, { seed: 0 });
  const tok = await loadTokenizer(path.join(dir, "llm"));
  for (const it of d.items) for (const text of [it.question, it.answer]) assert.ok(!tok.encode(text, { addSpecialTokens: false }).includes(tok.unkTokenId!), `unknown word in "${text}"`);
  const other = pretrainingData(0, 3, 0); // offset 0 = the demo's own seed 0: different scenes
  assert.notDeepEqual(d.scenes.map((s) => s.shapes), other.scenes.map((s) => s.shapes));
});

let resultA: PretrainResult;
const A = path.join(tmp, "a");

test("[wasm] a few updates lower the loss; no tensor leak", async () => {
  await setBackend("wasm", { quiet: true });
  await makeTiny(A, { seed: 1 });
  resultA = await assertNoTensorLeak("pretrainTiny", () => pretrainTiny(A, { seed: 7, ...SMALL }));
  const l = resultA.losses;
  assert.equal(l.length, SMALL.steps);
  for (const x of l) assert.ok(Number.isFinite(x), `loss ${x}`);
  // Cross-entropy over a 95-word vocabulary starts near ln(95) ≈ 4.55 or above for a random model.
  assert.ok(l[0]! > 2.5, `first loss ${l[0]}`);
  assert.ok(l[l.length - 1]! < 0.6 * l[0]!, `loss did not fall enough: ${l.map((x) => x.toFixed(3)).join(" ")}`);
  assert.equal(resultA.images, 2);
  assert.equal(resultA.samples, SMALL.steps * SMALL.batchSize!);
});

test("[wasm] same seed -> byte-identical folder; another seed changes only LLM/projector weights", async () => {
  const B = path.join(tmp, "b");
  const C = path.join(tmp, "c");
  await makeTiny(B, { seed: 1 });
  const rB = await pretrainTiny(B, { seed: 7, ...SMALL });
  await makeTiny(C, { seed: 1 });
  await pretrainTiny(C, { seed: 8, ...SMALL });
  assert.deepEqual(rB.losses, resultA.losses);
  const [a, b, c] = await Promise.all([A, B, C].map(fileHashes));
  assert.deepEqual([...a!.entries()].sort(), [...b!.entries()].sort());
  for (const f of ["pretrain.json", "projector_init/model.safetensors", "projector_init/config.json"]) assert.ok(a!.has(f), f);
  const changed = [...a!.keys()].filter((f) => a!.get(f) !== c!.get(f)).sort();
  assert.deepEqual(changed, ["llava/model.safetensors", "llm/model.safetensors", "pretrain.json", "projector/model.safetensors"]);
});

test("[wasm] written folders: tower and untrained projector kept, LLM trained, all load through loadVlm", async () => {
  const fresh = path.join(tmp, "fresh");
  await makeTiny(fresh, { seed: 1 });
  const [hf, hp] = await Promise.all([fileHashes(fresh), fileHashes(A)]);
  assert.equal(hp.get("projector_init/model.safetensors"), hf.get("projector/model.safetensors"));
  assert.equal(hp.get("clip/model.safetensors"), hf.get("clip/model.safetensors"));
  assert.notEqual(hp.get("llm/model.safetensors"), hf.get("llm/model.safetensors"));

  const clip = await readSafetensors(path.join(A, "clip", "model.safetensors"));
  const llava = await readSafetensors(path.join(A, "llava", "model.safetensors"));
  const llm = await readSafetensors(path.join(A, "llm", "model.safetensors"));
  const proj = await readSafetensors(path.join(A, "projector", "model.safetensors"));
  try {
    assert.equal(llava.size, clip.size + llm.size + proj.size);
    for (const [k, t] of clip) sameValues(llava.get("vision_tower." + k)!, t, k);
    for (const [k, t] of llm) sameValues(llava.get("language_model." + k)!, t, k);
    sameValues(llava.get("multi_modal_projector.linear_1.weight")!, proj.get("model.mm_projector.0.weight")!, "projector linear_1");
    sameValues(llava.get("multi_modal_projector.linear_2.bias")!, proj.get("model.mm_projector.2.bias")!, "projector linear_2 bias");
  } finally {
    tf.dispose([...clip.values(), ...llava.values(), ...llm.values(), ...proj.values()]);
  }

  // The composite and the separate folders are the same model: identical logits on the same ids.
  const vlm = await loadVlm({ model: path.join(A, "llava") });
  const lm = await loadLanguageModel(path.join(A, "llm"));
  const vlmInit = await loadVlm({ model: path.join(A, "llava"), projector: path.join(A, "projector_init") });
  try {
    const ids = tf.tensor2d([[1, 20, 30, 40, 50]], [1, 5], "int32");
    const a = vlm.lm.forward({ inputIds: ids }).logits;
    const b = lm.forward({ inputIds: ids }).logits;
    sameValues(a, b, "logits llava/ vs llm/");
    const w1 = vlm.projector.variables["linear_1.kernel"]!;
    const w0 = vlmInit.projector.variables["linear_1.kernel"]!;
    assert.ok(tf.tidy(() => tf.max(tf.abs(tf.sub(w1, w0))).dataSync()[0]!) > 0, "pretrained projector differs from projector_init");
    tf.dispose([ids, a, b]);
  } finally {
    vlm.dispose();
    lm.dispose();
    vlmInit.dispose();
  }
});

test("[wasm] an already pretrained folder is refused", async () => {
  await assert.rejects(() => pretrainTiny(A, { seed: 7, ...SMALL }), (e: unknown) => e instanceof ConfigError && /already pretrained/.test(e.message));
});

test("[wasm] continue: a second stage starts from the pretrained weights, keeps projector_init, appends to pretrain.json", async () => {
  await setBackend("wasm", { quiet: true });
  const E = path.join(tmp, "e");
  await makeTiny(E, { seed: 1 });
  await assert.rejects(() => pretrainTiny(E, { seed: 3, ...SMALL, continue: true }), (e: unknown) => e instanceof ConfigError && /only a pretrained folder can be continued/.test(e.message));
  await pretrainTiny(E, { seed: 7, ...SMALL });
  const before = await fileHashes(E);
  const first = JSON.parse(await readFile(path.join(E, "pretrain.json"), "utf8")) as { losses: number[]; tokenSets: unknown };
  assert.deepEqual(parseTokenSets("none"), [{ reducer: "none", params: {} }]);
  const tokenSets = parseTokenSets("random@64");
  // The first stage's scenes again (seed 7), now with random 64-patch sets only.
  const r = await assertNoTensorLeak("continue", () => pretrainTiny(E, { seed: 7, ...SMALL, steps: 3, tokenSets, continue: true }));
  const after = await fileHashes(E);
  assert.equal(after.get("projector_init/model.safetensors"), before.get("projector_init/model.safetensors"), "projector_init stays the untrained projector");
  assert.equal(after.get("clip/model.safetensors"), before.get("clip/model.safetensors"));
  assert.notEqual(after.get("llm/model.safetensors"), before.get("llm/model.safetensors"));
  assert.notEqual(after.get("projector/model.safetensors"), before.get("projector/model.safetensors"));
  const recipe = JSON.parse(await readFile(path.join(E, "pretrain.json"), "utf8")) as { losses: number[]; tokenSets: unknown; stages: { steps: number; tokenSets: unknown; losses: number[] }[] };
  assert.deepEqual(recipe.losses, first.losses, "the first stage stays at the top");
  assert.deepEqual(recipe.tokenSets, first.tokenSets);
  assert.equal(recipe.stages.length, 1);
  assert.equal(recipe.stages[0]!.steps, 3);
  assert.deepEqual(recipe.stages[0]!.tokenSets, tokenSets);
  assert.deepEqual(recipe.stages[0]!.losses, r.losses.map((x) => Number(x.toFixed(6))));
  // It continues, it does not restart: the same stage (data, batches, token sets) from fresh weights starts higher.
  const F = path.join(tmp, "f");
  await makeTiny(F, { seed: 1 });
  const fresh = await pretrainTiny(F, { seed: 7, ...SMALL, steps: 1, tokenSets, dryRun: true });
  assert.ok(r.losses[0]! < 0.7 * fresh.losses[0]!, `continued stage starts at ${r.losses[0]}, the same stage from fresh weights at ${fresh.losses[0]}`);
  assert.throws(() => parseTokenSets("pool"), /pool needs a budget/);
  assert.deepEqual(parseTokenSets("pool@64, random@64"), [{ reducer: "pool", params: { budget: 64 } }, { reducer: "random", params: { budget: 64 } }]);
});

test("[cpu] two updates on one scene lower the loss", async () => {
  await setBackend("cpu", { quiet: true });
  try {
    const D = path.join(tmp, "cpu-d");
    await makeTiny(D, { seed: 2 });
    const r = await assertNoTensorLeak("pretrainTiny (cpu)", () => pretrainTiny(D, { seed: 3, ...SMALL, steps: 2, images: 1, batchSize: 3, encodeBatch: 1 }));
    assert.ok(r.losses[1]! < r.losses[0]!, `cpu losses ${r.losses}`);
  } finally {
    await setBackend("wasm", { quiet: true });
  }
});
