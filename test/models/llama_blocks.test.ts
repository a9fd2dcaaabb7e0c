// The LLM's blocked kernels on wasm (models/blocks.ts, prepareLlmKernels) on weights big enough to be split into
// several blocks (the golden tiny models fit in one): the blocks replace the raw kernels (tensor bytes of the model
// <= 1.1x the raw weights), and prefill logits, cached decoding steps, the embeddings read from a tied head's blocks
// and gradients equal the cpu backend's (which never blocks), for a tied Qwen2-style and an untied LLaMA-style model
// with every bias kind.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { tf, setBackend } from "../../core/backend.js";
import { assertNoTensorLeak } from "../../core/memory.js";
import { createLanguageModel, type LanguageModel } from "../../models/llama.js";
import type { LlmWeights, Linear } from "../../models/llama_weights.js";
import type { LlmConfig } from "../../models/llm_config.js";
import { blockSizes, blockWidth, gatherColumnBlocks, splitColumns, splitRowsTransposed } from "../../models/blocks.js";

// hidden 640 -> blocks of 384 columns: qkv [640, 768] 2 blocks, o [512, 640] 2 (width 512), MLP 1200 -> 4 blocks,
// head [640, 1000] 3 blocks. Checked below, so a change of blockWidth cannot silently make this a one-block test.
const BASE: LlmConfig = {
  family: "qwen2", modelType: "qwen2", hidden: 640, layers: 2, heads: 8, kvHeads: 2, headDim: 64, intermediate: 1200, vocab: 1000,
  ropeTheta: 10000, ropeScaling: null, eps: 1e-6, maxPositions: 4096, tieEmbeddings: true, qkvBias: true, oBias: false, mlpBias: false,
  bosTokenId: undefined, eosTokenIds: [], padTokenId: undefined, weightPrefix: "",
};
const CONFIGS: [string, LlmConfig][] = [
  ["tied qwen2 (q/k/v bias)", BASE],
  ["untied llama (o and MLP biases)", { ...BASE, family: "llama", modelType: "llama", tieEmbeddings: false, qkvBias: false, oBias: true, mlpBias: true }],
];

/** Seeded uniform(-a, a) values (a = 0.035: about the std 0.02 of HF's initializer). */
function values(n: number, seed: number, a = 0.035): Float32Array {
  let s = seed >>> 0 || 1;
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    out[i] = (s / 2 ** 32 - 0.5) * 2 * a;
  }
  return out;
}

/** The same weights on whichever backend is active (our layout: Linear [in, out], q/k/v and gate/up fused). */
function weights(cfg: LlmConfig): LlmWeights {
  const { hidden: C, heads: H, kvHeads: KV, headDim: D, intermediate: I, vocab: V } = cfg;
  let seed = 1;
  const t2 = (r: number, c: number) => tf.tensor2d(values(r * c, seed++), [r, c]);
  const t1 = (n: number, a = 0.035) => tf.tensor1d(values(n, seed++, a));
  const norm = (n: number) => tf.tensor1d(values(n, seed++, 0.2).map((x) => 1 + x));
  const lin = (r: number, c: number, bias: boolean): Linear => (bias ? { w: t2(r, c), b: t1(c, 0.5) } : { w: t2(r, c) });
  return {
    embed: t2(V, C),
    norm: norm(C),
    layers: Array.from({ length: cfg.layers }, () => ({
      attnNorm: norm(C),
      qkv: lin(C, (H + 2 * KV) * D, cfg.qkvBias),
      o: lin(H * D, C, cfg.oBias),
      mlpNorm: norm(C),
      gateUp: lin(C, 2 * I, cfg.mlpBias),
      down: lin(I, C, cfg.mlpBias),
    })),
    ...(cfg.tieEmbeddings ? {} : { lmHead: lin(C, V, false) }),
  };
}

function tensorsOf(w: LlmWeights): tf.Tensor[] {
  const lin = (l: Linear | undefined) => (l ? [l.w, ...(l.b ? [l.b] : [])] : []);
  return [w.embed, w.norm, ...lin(w.lmHead), ...w.layers.flatMap((l) => [l.attnNorm, l.mlpNorm, ...lin(l.qkv), ...lin(l.o), ...lin(l.gateUp), ...lin(l.down)])];
}

const B = 2;
const T = 12;
const IDS = [Array.from({ length: T }, (_, i) => (i * 37 + 5) % BASE.vocab), Array.from({ length: T }, (_, i) => (i < 3 ? 0 : (i * 101 + 999) % BASE.vocab))];
const MASK = [new Array<number>(T).fill(1), IDS[1]!.map((_, i) => (i < 3 ? 0 : 1))]; // row 1 left-padded
const STEPS = [[17, 998], [0, 512]]; // decoding steps (one token per row)

interface Run {
  prefill: Float32Array; // [B, T, V]
  steps: Float32Array[]; // [B, 1, V] each
  embeds: Float32Array; // lm.embed(IDS) [B, T, C]
  grad: Float32Array; // d(Σ logits·r)/d inputsEmbeds [1, 6, C]
}

/** Prefill, two cached decoding steps, lm.embed and an input gradient (what projector training needs). */
function run(lm: LanguageModel): Run {
  const ids = tf.tensor2d(IDS, [B, T], "int32");
  const mask = tf.tensor2d(MASK, [B, T], "int32");
  const cache = lm.newCache();
  try {
    const prefill = lm.forward({ inputIds: ids, attentionMask: mask, cache });
    const steps = STEPS.map((tok) => {
      const t = tf.tensor2d(tok, [B, 1], "int32");
      const out = lm.forward({ inputIds: t, cache, lastLogitsOnly: true });
      const d = out.logits.dataSync() as Float32Array;
      tf.dispose([t, out.logits]);
      return d;
    });
    const emb = lm.embed(ids);
    const grad = tf.tidy(() => {
      const x = tf.tensor3d(values(6 * lm.config.hidden, 99, 1), [1, 6, lm.config.hidden]);
      const r = tf.tensor3d(values(6 * lm.config.vocab, 98, 1), [1, 6, lm.config.vocab]);
      return tf.grad((e: tf.Tensor) => tf.sum(tf.mul(lm.forward({ inputsEmbeds: e as tf.Tensor3D }).logits, r)))(x);
    });
    const res = { prefill: prefill.logits.dataSync() as Float32Array, steps, embeds: emb.dataSync() as Float32Array, grad: grad.dataSync() as Float32Array };
    tf.dispose([prefill.logits, emb, grad]);
    return res;
  } finally {
    cache.dispose();
    tf.dispose([ids, mask]);
  }
}

function maxDiff(a: Float32Array, b: Float32Array): number {
  assert.equal(a.length, b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

test("blocks: the test shapes split every kernel kind into several blocks", () => {
  const { hidden: C, heads: H, kvHeads: KV, headDim: D, intermediate: I, vocab: V } = BASE;
  const count = (rows: number, cols: number) => blockSizes(cols, blockWidth(rows)).length;
  assert.ok(count(C, (H + 2 * KV) * D) >= 2, "qkv");
  assert.ok(count(H * D, C) >= 2, "o");
  assert.ok(count(C, I) >= 3, "MLP");
  assert.ok(count(C, V) >= 3, "head");
});

test("blocks: gatherColumnBlocks reads columns of the blocks in the ids' order; splitRowsTransposed = column blocks of wᵀ", async () => {
  await setBackend("wasm");
  const w = tf.tensor2d(values(7 * 10, 5), [7, 10]); // [K, N]
  const blocks = splitColumns(w, [4, 4, 2]) as tf.Tensor2D[];
  const ids = [9, 0, 5, 5, 3, 8];
  const got = gatherColumnBlocks(blocks, ids);
  const want = tf.tidy(() => tf.transpose(tf.gather(w, tf.tensor1d(ids, "int32"), 1)));
  assert.deepEqual(got.shape, [6, 7]);
  assert.deepEqual(Array.from(got.dataSync()), Array.from(want.dataSync()));
  assert.throws(() => gatherColumnBlocks(blocks, [3, 10], "embed: token id"), /embed: token id 10 at position 1 is outside 0\.\.9/);
  const rt = splitRowsTransposed(w, [3, 4]); // blocks of wᵀ [10, 7]
  const wt = tf.transpose(w);
  const ref = splitColumns(wt, [3, 4]);
  rt.forEach((b, j) => assert.deepEqual(Array.from(b.dataSync()), Array.from(ref[j]!.dataSync()), `block ${j}`));
  tf.dispose([w, got, want, wt, ...blocks, ...rt, ...ref]);
});

for (const [name, cfg] of CONFIGS) {
  describe(`blocked LLM kernels, ${name}`, () => {
    let ref: Run;
    test("cpu reference (never blocked)", async () => {
      await setBackend("cpu");
      const lm = createLanguageModel(cfg, weights(cfg));
      ref = run(lm);
      lm.dispose();
    });

    test("wasm: the model holds <= 1.1x the raw weight bytes; raw kernels are replaced; dispose frees everything", async () => {
      await setBackend("wasm");
      const before = tf.memory();
      const w = weights(cfg);
      const raw = tensorsOf(w).reduce((a, t) => a + t.size * 4, 0);
      assert.equal(tf.memory().numBytes - before.numBytes, raw);
      const lm = createLanguageModel(cfg, w);
      const held = tf.memory().numBytes - before.numBytes;
      assert.ok(held <= 1.1 * raw, `held ${held} B > 1.1 x raw ${raw} B`);
      assert.ok(w.layers.every((l) => l.qkv.w.isDisposed && l.o.w.isDisposed && l.gateUp.w.isDisposed && l.down.w.isDisposed), "blocks replaced the layer kernels");
      assert.equal(w.embed.isDisposed, cfg.tieEmbeddings, "a tied embed lives in the head's blocks, an untied one stays");
      lm.dispose();
      assert.equal(tf.memory().numBytes, before.numBytes);
      assert.equal(tf.memory().numTensors, before.numTensors);
    });

    test("wasm: prefill, cached decoding, embeddings and input gradient equal the cpu backend's", async () => {
      await setBackend("wasm");
      const lm = createLanguageModel(cfg, weights(cfg));
      try {
        const got = await assertNoTensorLeak("blocked run", () => run(lm));
        assert.ok(lm.weights.layers[0]!.qkv.w.isDisposed, "the model ran on blocks");
        const d = {
          prefill: maxDiff(got.prefill, ref.prefill),
          steps: Math.max(...got.steps.map((s, i) => maxDiff(s, ref.steps[i]!))),
          embeds: maxDiff(got.embeds, ref.embeds),
          grad: maxDiff(got.grad, ref.grad),
        };
        assert.ok(d.prefill <= 1e-5 && d.steps <= 1e-5, `logits differ: ${JSON.stringify(d)}`);
        assert.equal(d.embeds, 0, "embeddings are copies of weight rows");
        const gmax = ref.grad.reduce((a, x) => Math.max(a, Math.abs(x)), 0);
        assert.ok(d.grad <= 1e-5 * Math.max(1, gmax), `gradient differs by ${d.grad} (max |grad| ${gmax})`);
      } finally {
        lm.dispose();
      }
    });

    test("wasm: { blocks: false } keeps the raw kernels and gives the same logits", async () => {
      await setBackend("wasm");
      const w = weights(cfg);
      const lm = createLanguageModel(cfg, w, { blocks: false });
      try {
        assert.ok(!w.layers[0]!.qkv.w.isDisposed && !w.embed.isDisposed);
        const ids = tf.tensor2d(IDS, [B, T], "int32");
        const mask = tf.tensor2d(MASK, [B, T], "int32");
        const logits = lm.forward({ inputIds: ids, attentionMask: mask }).logits;
        assert.ok(maxDiff(logits.dataSync() as Float32Array, ref.prefill) <= 1e-5);
        tf.dispose([ids, mask, logits]);
      } finally {
        lm.dispose();
      }
    });
  });
}
