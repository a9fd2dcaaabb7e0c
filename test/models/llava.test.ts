// The assembled VLM: splice bookkeeping on hand-built ids (several images, text-only rows, left/right padding,
// collated input), spliced embeddings on a fake embedding, the golden tiny parts end to end against llama_tiny's
// mm_logits (CLIP tiny -> projector tiny -> LLaMA tiny, public reference implementations), reducer `none` against a
// manual composition, features-in path, batch = each alone, cached generation = recomputation, projector gradients
// through the splice, loading from make-tiny's composite and parts, and no tensor growth.
import { after, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { tf, setBackend } from "../../core/backend.js";
import { assertNoTensorLeak } from "../../core/memory.js";
import { IMAGE_TOKEN_INDEX as IMG } from "../../data/conversation.js";
import { makeTiny } from "../../models/make_tiny.js";
import { planSplice, spliceImageTokens } from "../../models/splice.js";
import {
  encodeImages, loadVlm, resolveVlmSettings, vlmForward, vlmForwardFromVisual, vlmGenerate, encodeAndReduce, disposeVision,
} from "../../models/llava.js";
import { buildReducer, type Reducer } from "../../reduce/reducer.js";
import { goldenDir, maxAbsDiff, readGoldenVector } from "../helpers.js";

const G = path.join(goldenDir(), "models");
const VEC = path.join(G, "vectors");
const PARTS = { visionTower: path.join(G, "clip_vision_tiny"), languageModel: path.join(G, "llama_tiny"), projector: path.join(G, "projector_tiny") };

const tmp = await mkdtemp(path.join(tmpdir(), "vzt-llava-"));
after(() => rm(tmp, { recursive: true, force: true }));

/** A reducer value that keeps patches [from, from + n) (0-based), as golden mm_inputs_embeds does with 0..4. */
function slicePatches(from: number, n: number): Reducer {
  return {
    name: "slice",
    reduce: (f) => ({
      tokens: tf.slice(f.hidden, [0, 1 + from, 0], [f.hidden.shape[0], n, f.hidden.shape[2]]),
      provenance: Array.from({ length: f.hidden.shape[0] }, () => Array.from({ length: n }, (_, t) => [from + t])),
    }),
  };
}

function goldenPixels(): tf.Tensor4D {
  const g = readGoldenVector(path.join(VEC, "clip_tiny/pixel_values.json"));
  return tf.tensor4d(g.data as Float32Array, g.shape as [number, number, number, number]);
}

function rowsOf(name: string): number[][] {
  const g = readGoldenVector(path.join(VEC, name));
  const [B, T] = g.shape as [number, number];
  return Array.from({ length: B }, (_, b) => Array.from(g.data.subarray(b * T, (b + 1) * T)));
}

/** Logits rows [b][pos] -> Float32Array of V values. */
async function logitsAt(logits: tf.Tensor3D, b: number, pos: number): Promise<Float32Array> {
  const V = logits.shape[2];
  const t = tf.slice(logits, [b, pos, 0], [1, 1, V]);
  const d = (await t.data()) as Float32Array;
  t.dispose();
  return d;
}

// ---- splice bookkeeping -------------------------------------------------------------------------------------------

test("planSplice: positions, lengths, masks and labels on hand-built ids (right and left padding)", () => {
  const ids = [
    [1, IMG, 5, 6], // one image
    [1, 7, IMG, 8, IMG, 9], // two images
    [1, 2, 3], // text only
  ];
  const labels = [
    [-100, -100, 5, 6],
    [-100, 7, -100, 8, -100, 9],
    [-100, 2, 3],
  ];
  const T = 3;
  const right = planSplice(ids, T, 3, { labels });
  assert.equal(right.length, 10);
  assert.deepEqual(right.lengths, [6, 10, 3]);
  assert.deepEqual(right.visualPositions, [[1, 2, 3], [2, 3, 4, 6, 7, 8], []]);
  assert.deepEqual(right.imageSpans, [
    { row: 0, start: 1, length: 3, image: 0 },
    { row: 1, start: 2, length: 3, image: 1 },
    { row: 1, start: 6, length: 3, image: 2 },
  ]);
  assert.deepEqual(right.mask, [
    [1, 1, 1, 1, 1, 1, 0, 0, 0, 0],
    [1, 1, 1, 1, 1, 1, 1, 1, 1, 1],
    [1, 1, 1, 0, 0, 0, 0, 0, 0, 0],
  ]);
  const X = -100;
  assert.deepEqual(right.labels, [
    [X, X, X, X, 5, 6, X, X, X, X],
    [X, 7, X, X, X, 8, X, X, X, 9],
    [X, 2, 3, X, X, X, X, X, X, X],
  ]);
  assert.deepEqual(right.textIds, [1, 5, 6, 1, 7, 8, 9, 1, 2, 3]);
  assert.deepEqual(right.segments[1], [
    { kind: "text", start: 3, length: 2 },
    { kind: "image", image: 1, length: 3 },
    { kind: "text", start: 5, length: 1 },
    { kind: "image", image: 2, length: 3 },
    { kind: "text", start: 6, length: 1 },
  ]);

  const left = planSplice(ids, T, 3, { labels, padSide: "left", imageRows: [2, 0, 1] });
  assert.deepEqual(left.visualPositions, [[5, 6, 7], [2, 3, 4, 6, 7, 8], []]);
  assert.deepEqual(left.imageSpans.map((s) => s.image), [2, 0, 1]);
  assert.deepEqual(left.mask[0], [0, 0, 0, 0, 1, 1, 1, 1, 1, 1]);
  assert.deepEqual(left.mask[2], [0, 0, 0, 0, 0, 0, 0, 1, 1, 1]);
  assert.deepEqual(left.labels![0], [X, X, X, X, X, X, X, X, 5, 6]);
  assert.deepEqual(left.segments[2], [{ kind: "pad", length: 7 }, { kind: "text", start: 7, length: 3 }]);

  // An already collated (right-padded) batch: masked positions are dropped, then re-padded.
  const collated = planSplice([[1, IMG, 5, 0, 0], [1, 2, 3, 4, IMG]], 2, 2, { attentionMask: [[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]], padSide: "left" });
  assert.equal(collated.length, 6);
  assert.deepEqual(collated.lengths, [4, 6]);
  assert.deepEqual(collated.visualPositions, [[3, 4], [4, 5]]);
  assert.deepEqual(collated.textIds, [1, 5, 1, 2, 3, 4]);
});

test("planSplice: errors name the row and position", () => {
  assert.throws(() => planSplice([[1, IMG], [1, IMG]], 4, 1), /2 image placeholder\(s\).*1 image/);
  assert.throws(() => planSplice([[1, 2], [1, IMG]], 4, 1, { imageRows: [3] }), /row 1, position 1: .*visual row 3/);
  assert.throws(() => planSplice([[1, -5]], 4, 0), /row 0, position 1: id -5/);
  assert.throws(() => planSplice([[1, 99]], 4, 0, { vocab: 50 }), /row 0, position 1: id 99.*0\.\.49/);
  assert.throws(() => planSplice([[1, 2]], 4, 0, { labels: [[1]] }), /row 0 has 2 ids but 1 labels/);
  assert.throws(() => planSplice([[0, 0]], 4, 0, { attentionMask: [[0, 0]] }), /row 0 has no real token/);
});

test("spliceImageTokens: embeddings are the text embeddings and the visual tokens, in place, zeros on padding", async () => {
  await setBackend("wasm", { quiet: true });
  const D = 2;
  // Fake embedding: id -> [id, 10·id].
  const fake = { embed: (ids: tf.Tensor2D) => tf.tidy(() => tf.stack([tf.cast(ids, "float32"), tf.mul(tf.cast(ids, "float32"), 10)], 2) as tf.Tensor3D) };
  const T = 2;
  const visual = tf.tensor3d(Array.from({ length: 2 * T * D }, (_, i) => 1000 + i), [2, T, D]); // image i token t: 1000 + (i·T + t)·D + d
  const ids = [[1, IMG, 5], [3, 4, 6, IMG, IMG]];
  await assertNoTensorLeak("splice", async () => {
    for (const padSide of ["right", "left"] as const) {
      const sp = spliceImageTokens(fake, ids, visual, [1, 0, 1], { padSide });
      assert.deepEqual(sp.inputsEmbeds.shape, [2, 7, D]);
      const e = (await sp.inputsEmbeds.array()) as number[][][];
      const tok = (id: number) => [id, 10 * id];
      const vis = (i: number, t: number) => [1000 + (i * T + t) * D, 1001 + (i * T + t) * D];
      const row0 = [tok(1), vis(1, 0), vis(1, 1), tok(5)];
      const row1 = [tok(3), tok(4), tok(6), vis(0, 0), vis(0, 1), vis(1, 0), vis(1, 1)];
      const zeros = [[0, 0], [0, 0], [0, 0]];
      assert.deepEqual(e[0], padSide === "right" ? [...row0, ...zeros] : [...zeros, ...row0]);
      assert.deepEqual(e[1], row1);
      assert.deepEqual(await sp.attentionMask.array(), sp.mask);
      tf.dispose([sp.inputsEmbeds, sp.attentionMask]);
    }
  });
  visual.dispose();
});

// ---- golden end to end ---------------------------------------------------------------------------------------------

for (const backend of ["wasm", "cpu"] as const) {
  test(`golden tiny parts end to end: pixels -> tower -> patches 1..5 -> projector -> splice -> LLaMA = mm_logits within 1e-4 (${backend})`, async () => {
    await setBackend(backend, { quiet: true });
    const vlm = await loadVlm(PARTS);
    try {
      assert.equal(vlm.visionLayer, -2); // projector_tiny/config.json mm_vision_select_layer
      assert.equal(vlm.imageTokenId, IMG);
      assert.equal(vlm.tokenizer, undefined);
      assert.equal(vlm.gridSize, 4);
      const px = goldenPixels();
      const inputIds = rowsOf("llama_tiny/mm_text_ids.json").map((r) => [IMG, ...r]);
      const want = readGoldenVector(path.join(VEC, "llama_tiny/mm_logits.json"));
      await assertNoTensorLeak(`${backend} vlmForward`, async () => {
        const out = vlmForward(vlm, { pixelValues: px, inputIds }, slicePatches(0, 5));
        assert.deepEqual(out.logits.shape, want.shape);
        const d = maxAbsDiff(await out.logits.data(), want.data);
        assert.ok(d <= 1e-4, `mm_logits max abs diff ${d.toExponential(3)} > 1e-4`);
        assert.deepEqual(out.visualPositions, [[0, 1, 2, 3, 4], [0, 1, 2, 3, 4]]);
        tf.dispose([out.logits, out.visualTokens!]);
      });
      // Features-in path from the golden projector input (clip hidden_states[-2] patches 0..4).
      const feats = readGoldenVector(path.join(VEC, "projector_tiny/input.json"));
      const all = tf.tensor3d(feats.data as Float32Array, feats.shape as [number, number, number]);
      const first5 = tf.slice(all, [0, 0, 0], [2, 5, 64]);
      const out = vlmForwardFromVisual(vlm, first5, { inputIds });
      const d = maxAbsDiff(await out.logits.data(), want.data);
      assert.ok(d <= 1e-4, `features-in mm_logits max abs diff ${d.toExponential(3)} > 1e-4`);
      tf.dispose([out.logits, all, first5, px]);
    } finally {
      vlm.dispose();
    }
  });
}

// ---- invariants on the golden parts ---------------------------------------------------------------------------------

test("reducer none: vlmForward = tower -> drop CLS -> projector -> LM(inputsEmbeds) within 1e-5; features-in = full", async () => {
  await setBackend("wasm", { quiet: true });
  const vlm = await loadVlm(PARTS);
  const px = goldenPixels();
  const none = buildReducer("none");
  const text = [[1, 50, 70], [8, 9, 41, 40]];
  const after = [[55, 35], [44]];
  const inputIds = text.map((t, b) => [...t, IMG, ...after[b]!]);
  try {
    const out = vlmForward(vlm, { pixelValues: px, inputIds }, none);
    // Manual composition, row by row (no padding involved).
    for (let b = 0; b < 2; b++) {
      const manual = tf.tidy(() => {
        const v = vlm.tower.forward(tf.slice(px, [b, 0, 0, 0], [1, 3, 56, 56]), { layer: -2 });
        const patches = tf.slice(v.hidden, [0, 1, 0], [1, 16, 64]) as tf.Tensor3D;
        const proj = vlm.projector.apply(patches);
        const emb = (ids: number[]) => vlm.lm.embed(tf.tensor2d(ids, [1, ids.length], "int32"));
        const x = tf.concat([emb(text[b]!), proj, emb(after[b]!)], 1) as tf.Tensor3D;
        return vlm.lm.forward({ inputsEmbeds: x }).logits;
      });
      const L = out.lengths[b]!;
      assert.equal(L, manual.shape[1]);
      const got = tf.slice(out.logits, [b, 0, 0], [1, L, out.logits.shape[2]]);
      const d = maxAbsDiff(await got.data(), await manual.data());
      assert.ok(d <= 1e-5, `row ${b}: max abs diff ${d.toExponential(3)} > 1e-5`);
      tf.dispose([got, manual]);
    }
    // Features-in path with the reducer's tokens gives the same logits.
    const fromVisual = vlmForwardFromVisual(vlm, out.visualTokens, { inputIds });
    assert.equal(maxAbsDiff(await fromVisual.logits.data(), await out.logits.data()), 0);
    tf.dispose([out.logits, out.visualTokens!, fromVisual.logits]);
  } finally {
    px.dispose();
    vlm.dispose();
  }
});

test("a batch of 2 with different prompt lengths equals each row alone at its real positions (right and left padding)", async () => {
  await setBackend("wasm", { quiet: true });
  const vlm = await loadVlm(PARTS);
  const px = goldenPixels();
  const zip = buildReducer("visionzip", { dominant: 4, contextual: 2 });
  const inputIds = [[1, IMG, 5, 6, 7, 8, 9, 10], [1, 33, IMG, 12]];
  const labels = [[-100, -100, 5, 6, 7, 8, 9, 10], [-100, -100, -100, 12]];
  try {
    for (const padSide of ["right", "left"] as const) {
      const both = vlmForward(vlm, { pixelValues: px, inputIds, labels }, zip, { padSide });
      assert.equal(both.visualTokens!.shape[1], 6);
      assert.deepEqual(both.lengths, [13, 9]);
      const L = both.logits.shape[1];
      for (let b = 0; b < 2; b++) {
        const one = tf.slice(px, [b, 0, 0, 0], [1, 3, 56, 56]);
        const alone = vlmForward(vlm, { pixelValues: one, inputIds: [inputIds[b]!], labels: [labels[b]!] }, zip);
        const n = both.lengths[b]!;
        const off = padSide === "left" ? L - n : 0;
        assert.deepEqual(both.labels![b]!.slice(off, off + n), alone.labels![0]);
        assert.deepEqual(both.visualPositions[b], alone.visualPositions[0]!.map((p) => p + off));
        let worst = 0;
        for (let p = 0; p < n; p++) worst = Math.max(worst, maxAbsDiff(await logitsAt(both.logits, b, off + p), await logitsAt(alone.logits, 0, p)));
        assert.ok(worst <= 1e-4, `${padSide} row ${b}: max abs diff ${worst.toExponential(3)}`);
        tf.dispose([one, alone.logits, alone.visualTokens!]);
      }
      tf.dispose([both.logits, both.visualTokens!]);
    }
  } finally {
    px.dispose();
    vlm.dispose();
  }
});

test("vlmGenerate: deterministic, first token = argmax of a manual prefill, cached steps = recomputation, no tensor growth", async () => {
  await setBackend("wasm", { quiet: true });
  const vlm = await loadVlm(PARTS);
  const px = goldenPixels();
  const zip = buildReducer("visionzip", { dominant: 5, contextual: 2 });
  const inputIds = [[1, IMG, 50, 70, 55], [1, 9, 41, IMG, 40, 49, 3, 12]];
  try {
    const n = 6;
    const a = await assertNoTensorLeak("vlmGenerate", () => vlmGenerate(vlm, { pixelValues: px, inputIds }, zip, { maxNewTokens: n }));
    const b = await vlmGenerate(vlm, { pixelValues: px, inputIds }, zip, { maxNewTokens: n });
    assert.deepEqual(a, b);
    assert.deepEqual(a.map((r) => r.length), [n, n]);
    // Recompute every step from scratch (no cache), each row alone, with the same reduced visual tokens.
    const reduced = encodeAndReduce(vlm, px, zip);
    for (let r = 0; r < 2; r++) {
      const vis = tf.slice(reduced.tokens, [r, 0, 0], [1, 7, 64]);
      const ids = [...inputIds[r]!];
      for (let s = 0; s < n; s++) {
        const out = vlmForwardFromVisual(vlm, vis, { inputIds: [ids] }, { lastLogitsOnly: true });
        const next = tf.tidy(() => tf.argMax(tf.reshape(out.logits, [-1])));
        const id = (await next.data())[0]!;
        tf.dispose([out.logits, next]);
        assert.equal(a[r]![s], id, `row ${r} step ${s}`);
        ids.push(id);
      }
      vis.dispose();
    }
    reduced.tokens.dispose();
    // EOS stops a row: make the first generated token of row 0 the EOS id.
    const stopped = await vlmGenerate(vlm, { pixelValues: px, inputIds }, zip, { maxNewTokens: n, eosTokenId: a[0]![0]! });
    assert.deepEqual(stopped[0], [a[0]![0]]);
    assert.deepEqual(stopped[1], a[1]!.slice(0, a[1]!.indexOf(a[0]![0]!) + 1 || n));
  } finally {
    px.dispose();
    vlm.dispose();
  }
});

test("projector gradients flow through the splice (wasm has no gather gradient), leaving no tensors behind", async () => {
  await setBackend("wasm", { quiet: true });
  const vlm = await loadVlm(PARTS);
  const px = goldenPixels();
  try {
    const vision = encodeImages(vlm.tower, px, -2);
    const tokens = tf.slice(vision.hidden, [0, 1, 0], [2, 16, 64]) as tf.Tensor3D;
    disposeVision(vision);
    const inputIds = [[1, IMG, 5, 6], [1, 7, IMG]];
    await assertNoTensorLeak("variableGrads", async () => {
      const { value, grads } = tf.variableGrads(() => {
        const out = vlmForwardFromVisual(vlm, tokens, { inputIds });
        return tf.sum(tf.square(out.logits)) as tf.Scalar;
      }, Object.values(vlm.projector.variables));
      assert.deepEqual(Object.keys(grads).length, 4);
      for (const [name, g] of Object.entries(grads)) {
        const nt = tf.norm(g);
        const norm = (await nt.data())[0]!;
        nt.dispose();
        assert.ok(Number.isFinite(norm) && norm > 0, `${name}: gradient norm ${norm}`);
      }
      tf.dispose([value, ...Object.values(grads)]);
    });
    tokens.dispose();
  } finally {
    px.dispose();
    vlm.dispose();
  }
});

// ---- loading ------------------------------------------------------------------------------------------------------

test("loadVlm: make-tiny composite = its parts; settings from the configs; width mismatch and missing parts named", async () => {
  await setBackend("wasm", { quiet: true });
  await makeTiny(tmp, { seed: 1 });
  const composite = await assertNoTensorLeak("load + dispose", async () => {
    const v = await loadVlm({ model: path.join(tmp, "llava") });
    v.dispose();
    return v;
  });
  assert.equal(composite.visionLayer, -2);
  const c = await loadVlm({ model: path.join(tmp, "llava") });
  const p = await loadVlm({ visionTower: path.join(tmp, "clip"), languageModel: path.join(tmp, "llm"), projector: path.join(tmp, "projector") });
  try {
    assert.ok(c.tokenizer && p.tokenizer);
    assert.equal(c.imageTokenId, c.tokenizer.tokenToId("<image>"));
    assert.equal(p.imageTokenId, p.tokenizer.tokenToId("<image>"));
    assert.equal(c.gridSize, 24);
    assert.equal((c.preprocessor as { crop_size: number }).crop_size, 336);
    const px = tf.randomNormal([1, 3, 336, 336], 0, 1, "float32", 7) as tf.Tensor4D;
    const ids = [c.tokenizer.encode("a red circle"), c.tokenizer.encode("USER :")];
    const inputIds = [[...ids[0]!, IMG, 3, 4]];
    const zip = buildReducer("visionzip", { budget: 64 });
    const oc = vlmForward(c, { pixelValues: px, inputIds }, zip);
    const op = vlmForward(p, { pixelValues: px, inputIds }, zip);
    assert.deepEqual(oc.logits.shape, [1, ids[0]!.length + 64 + 2, c.lm.config.vocab]);
    assert.equal(maxAbsDiff(await oc.logits.data(), await op.logits.data()), 0);
    assert.deepEqual(oc.keptIndices![0]!.length, 53);
    tf.dispose([px, oc.logits, oc.visualTokens!, op.logits, op.visualTokens!]);
  } finally {
    c.dispose();
    p.dispose();
  }
  // A fresh projector when none is given.
  const built = await loadVlm({ visionTower: path.join(tmp, "clip"), languageModel: path.join(tmp, "llm"), projectorInit: { seed: 5 } });
  assert.deepEqual([built.projector.inDim, built.projector.outDim], [64, 128]);
  built.dispose();
  const before = tf.memory().numTensors;
  await assert.rejects(
    loadVlm({ visionTower: path.join(tmp, "clip"), languageModel: path.join(tmp, "llm"), projector: path.join(G, "projector_tiny") }),
    /projector: output width 64 .* != LLM hidden size 128/,
  );
  await assert.rejects(loadVlm({ visionTower: path.join(tmp, "clip"), languageModel: path.join(tmp, "llm") }), /no projector source/);
  await assert.rejects(loadVlm({ model: path.join(tmp, "llm") }), /not a LLaVA composite/);
  assert.equal(tf.memory().numTensors, before, "failed loads leave no tensors");
});

test("resolveVlmSettings on the real llava-hf and original LLaVA configs (no weights read)", async () => {
  const real = path.join(goldenDir(), "real", "models");
  const hf = await resolveVlmSettings({ model: path.join(real, "llava-hf_llava-1.5-7b-hf") });
  assert.equal(hf.towerSource, path.join(real, "llava-hf_llava-1.5-7b-hf"));
  assert.deepEqual([hf.visionLayer, hf.imageTokenIndex, hf.preprocessMode], [-2, 32000, "clip"]);
  assert.equal((hf.preprocessor as { crop_size: unknown }).crop_size !== undefined, true);
  assert.equal(hf.tokenizerSource, path.join(real, "llava-hf_llava-1.5-7b-hf"));
  // Original LLaVA: the tower is named by mm_vision_tower (overridden here: no Hub access in tests), image_aspect_ratio pad.
  const orig = await resolveVlmSettings({ model: path.join(real, "liuhaotian_llava-v1.5-7b"), visionTower: path.join(G, "clip_vision_336") });
  assert.deepEqual([orig.towerSource, orig.visionLayer, orig.imageTokenIndex, orig.preprocessMode], [path.join(G, "clip_vision_336"), -2, undefined, "pad"]);
  assert.equal(orig.projectorSource, path.join(real, "liuhaotian_llava-v1.5-7b"));
  assert.equal(orig.tokenizerSource, undefined); // tokenizer.model only: not loadable, so not picked up
});
