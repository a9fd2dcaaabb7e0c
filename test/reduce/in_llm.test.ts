// In-LLM token reduction through the decoder hook (reduce/in_llm.ts, models/llama.ts), on the golden llama_tiny with
// mm_inputs_embeds (positions 0..4 visual) and on make-tiny's LLaVA with the splice:
// - full budget reproduces the plain forward exactly (FastV, TopV, an all-N schedule);
// - a reduced forward equals an independent float64 reference (test/reduce/ref_llama.ts) that runs the layers on the
//   kept subset with the original position ids, and so does cached decoding after it (recomputed);
// - counts, sorted kept indices, per-layer cache lengths, next position at the original length, left padding
//   (batched == alone), the G-Search text-query scores against the golden attention, no tensor growth.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { tf, setBackend } from "../../core/backend.js";
import { assertNoTensorLeak } from "../../core/memory.js";
import { IMAGE_TOKEN_INDEX as IMG } from "../../data/conversation.js";
import { loadLanguageModel, type LanguageModel } from "../../models/llama.js";
import { loadVlm, vlmForwardFromVisual, vlmGenerate, type Vlm } from "../../models/llava.js";
import { makeTiny } from "../../models/make_tiny.js";
import { fastvReducer } from "../../reduce/fastv.js";
import { keepTopScored, scheduleReducer, topKSorted, topvReducer, type InLlmReducer } from "../../reduce/in_llm.js";
import { goldenDir, maxAbsDiff, readGoldenVector } from "../helpers.js";
import { loadRefLlama, type RefLlama } from "./ref_llama.js";

const MODEL = path.join(goldenDir(), "models/llama_tiny");
const VEC = path.join(goldenDir(), "models/vectors/llama_tiny");
const B = 2;
const T = 12;
const N = 5; // visual positions 0..4
const VIS = [0, 1, 2, 3, 4];
const ROW = { rows: 1, cols: N }; // TopV grid of the 5 golden visual tokens

const embedsData = readGoldenVector(path.join(VEC, "mm_inputs_embeds.json")).data as Float32Array; // [2, 12, 64]
const C = embedsData.length / (B * T);
const rowEmbeds = (b: number) => Array.from({ length: T }, (_, t) => Float64Array.from(embedsData.subarray((b * T + t) * C, (b * T + t + 1) * C)));
const schedule = (keep: number[]) => scheduleReducer({ numLayers: 3, numVisual: N, keep });

/** Golden attention each visual key receives in `layer`, mean over heads, then over the query rows `queries`. */
function goldenScores(layer: number, queries: number[]): number[][] {
  const p = readGoldenVector(path.join(VEC, `mm_attn_probs_layer_${layer}.json`)).data; // [2, 4, 12, 12]
  const H = 4;
  return Array.from({ length: B }, (_, b) =>
    VIS.map((j) => {
      let s = 0;
      for (const q of queries) for (let h = 0; h < H; h++) s += p[((b * H + h) * T + q) * T + j]!;
      return s / (H * queries.length);
    }),
  );
}

async function rowsOf(t: tf.Tensor3D): Promise<Float32Array[][]> {
  const [b, n, v] = t.shape;
  const d = (await t.data()) as Float32Array;
  return Array.from({ length: b }, (_, i) => Array.from({ length: n }, (_, j) => d.slice((i * n + j) * v, (i * n + j + 1) * v)));
}

for (const backend of ["wasm", "cpu"] as const) {
  describe(`in-LLM reduction on llama_tiny (${backend})`, () => {
    let lm: LanguageModel;
    let ref: RefLlama;
    let embeds: tf.Tensor3D;
    const visualPositions = [VIS, VIS];
    before(async () => {
      await setBackend(backend);
      lm = await loadLanguageModel(MODEL);
      ref = await loadRefLlama(path.join(MODEL, "model.safetensors"), { heads: 4, kvHeads: 2, eps: 1e-6, theta: 10000 });
      embeds = tf.tensor3d(embedsData, [B, T, C]);
    });
    after(() => {
      embeds.dispose();
      lm.dispose();
    });

    test("full budget reproduces the plain forward (FastV K=1/2, TopV Li=0/1, all-N schedule)", async () => {
      const plain = lm.forward({ inputsEmbeds: embeds });
      const want = await plain.logits.data();
      // The plain forward itself matches the independent reference (so the reference is a fair judge below).
      const refRow0 = ref.forward(rowEmbeds(0), [...Array(T).keys()]);
      assert.ok(maxAbsDiff(want.subarray(0, T * 97), Float64Array.from(refRow0.flatMap((r) => [...r]))) < 1e-4, "plain forward vs float64 reference");
      plain.logits.dispose();
      const reducers: InLlmReducer[] = [
        fastvReducer({ layer: 2, budget: N }),
        fastvReducer({ layer: 1, ratio: 0 }),
        topvReducer({ layer: 1, budget: N, grid: ROW }),
        topvReducer({ layer: 0, budget: N, grid: ROW }),
        schedule([N, N, N]),
      ];
      for (const reducer of reducers) {
        const out = await assertNoTensorLeak(`${reducer.name} forward`, () => {
          const o = lm.forward({ inputsEmbeds: embeds, reduction: { reducer, visualPositions } });
          const d = o.logits.dataSync().slice();
          o.logits.dispose();
          return { d, trace: o.reduction! };
        });
        assert.ok(maxAbsDiff(out.d, want) <= 1e-6, `${reducer.name} ${JSON.stringify(reducer.params)}: logits differ from the plain forward`);
        assert.deepEqual(out.trace.visualPerLayer, [N, N, N]);
        assert.deepEqual(out.trace.keptPositions, [[...Array(T).keys()], [...Array(T).keys()]]);
      }
    });

    test("reduced forwards equal the float64 reference on the kept subset with original positions", async () => {
      const cases: { reducer: InLlmReducer; layer: number; keep: number }[] = [
        { reducer: fastvReducer({ layer: 2, budget: 2 }), layer: 2, keep: 2 },
        { reducer: fastvReducer({ layer: 1, ratio: 0.5 }), layer: 1, keep: 3 }, // round(5 · 0.5) = 2.5 -> 3
        { reducer: schedule([N, N, 1]), layer: 2, keep: 1 },
        { reducer: topvReducer({ layer: 0, budget: 3, sigma: 1, grid: ROW }), layer: 1, keep: 3 },
      ];
      for (const c of cases) {
        const o = lm.forward({ inputsEmbeds: embeds, reduction: { reducer: c.reducer, visualPositions } });
        const tr = o.reduction!;
        const got = await rowsOf(o.logits);
        o.logits.dispose();
        const what = `${c.reducer.name} ${JSON.stringify(c.reducer.params)}`;
        assert.deepEqual(tr.visualPerLayer, [0, 1, 2].map((l) => (l < c.layer ? N : c.keep)), what);
        assert.equal(tr.decisions.length, 1, what);
        for (let b = 0; b < B; b++) {
          const kept = tr.decisions[0]!.kept[b]!;
          assert.equal(kept.length, c.keep, `${what}: row ${b} keeps exactly the budget`);
          assert.deepEqual(kept, kept.slice().sort((x, y) => x - y), `${what}: kept indices ascending`);
          const positions = [...kept, ...[...Array(T).keys()].slice(N)]; // visual index v sits at position v
          assert.deepEqual(tr.keptPositions[b], positions, `${what}: row ${b} positions`);
          const want = ref.forward(rowEmbeds(b), [...Array(T).keys()], { layer: c.layer, keep: positions });
          assert.equal(got[b]!.length, positions.length);
          const d = maxAbsDiff(got[b]!.flatMap((r) => [...r]), want.flatMap((r) => [...r]));
          assert.ok(d < 1e-4, `${what}: row ${b}: max diff ${d} from the reference`);
        }
      }
    });

    test("FastV and schedule ranks: the exact attention rows of layer K-1 (golden, 1e-5), kept = their top-k", () => {
      const cases = [
        { reducer: fastvReducer({ layer: 2, budget: 2 }), scores: goldenScores(1, [T - 1]), keep: 2 }, // last token's row
        { reducer: fastvReducer({ layer: 1, budget: 3 }), scores: goldenScores(0, [T - 1]), keep: 3 },
        { reducer: schedule([N, N, 3]), scores: goldenScores(1, [5, 6, 7, 8, 9, 10, 11]), keep: 3 }, // text after the image
      ];
      for (const c of cases) {
        const o = lm.forward({ inputsEmbeds: embeds, lastLogitsOnly: true, reduction: { reducer: c.reducer, visualPositions } });
        o.logits.dispose();
        const dec = o.reduction!.decisions[0]!;
        for (let b = 0; b < B; b++) {
          const d = maxAbsDiff(dec.scores![b]!, c.scores[b]!);
          assert.ok(d <= 1e-5, `${c.reducer.name} row ${b}: scores differ from the golden attention by ${d}`);
          assert.deepEqual(dec.kept[b], topKSorted(c.scores[b]!, c.keep), `${c.reducer.name} row ${b}: kept = top-${c.keep} of the golden scores`);
        }
      }
    });

    test("two decisions (layers 1 and 2): caches of three lengths, logits = reference with both cuts", async () => {
      const twoStage: InLlmReducer = {
        name: "two-stage",
        decisions: () => [{ layer: 1, attention: "textAfterImage" }, { layer: 2, attention: "last" }],
        decide: (d) => keepTopScored(d, d.layer === 1 ? 4 : 2, "two-stage"),
      };
      const cache = lm.newCache();
      const o = lm.forward({ inputsEmbeds: embeds, cache, reduction: { reducer: twoStage, visualPositions } });
      assert.deepEqual([0, 1, 2].map((l) => cache.length(l)), [T, T - 1, T - 3]);
      const tr = o.reduction!;
      assert.deepEqual(tr.visualPerLayer, [N, 4, 2]);
      const got = await rowsOf(o.logits);
      o.logits.dispose();
      cache.dispose();
      for (let b = 0; b < B; b++) {
        const [k1, k2] = [tr.decisions[0]!.kept[b]!, tr.decisions[1]!.kept[b]!];
        assert.ok(k2.every((v) => k1.includes(v)), "the second decision keeps a subset of the first");
        const text = [...Array(T).keys()].slice(N);
        const want = ref.forward(rowEmbeds(b), [...Array(T).keys()], [{ layer: 1, keep: [...k1, ...text] }, { layer: 2, keep: [...k2, ...text] }]);
        const d = maxAbsDiff(got[b]!.flatMap((r) => [...r]), want.flatMap((r) => [...r]));
        assert.ok(d < 1e-4, `row ${b}: two-stage reduction differs from the reference by ${d}`);
      }
    });

    test("dropping only the last visual token changes the text logits, all finite", async () => {
      const dropLast: InLlmReducer = { name: "drop-last", decisions: () => [{ layer: 1 }], decide: (d) => d.alive.map((a) => a.slice(0, -1)) };
      const plain = lm.forward({ inputsEmbeds: embeds });
      const cut = lm.forward({ inputsEmbeds: embeds, reduction: { reducer: dropLast, visualPositions } });
      const [p, c] = [await rowsOf(plain.logits), await rowsOf(cut.logits)];
      tf.dispose([plain.logits, cut.logits]);
      for (let b = 0; b < B; b++) {
        assert.equal(c[b]!.length, T - 1);
        for (let t = N; t < T; t++) {
          const row = c[b]![t - 1]!; // position t sits at index t - 1 after the drop
          assert.ok(row.every(Number.isFinite), `row ${b} position ${t} finite`);
          assert.ok(maxAbsDiff(row, p[b]![t]!) > 1e-4, `row ${b} position ${t} changed`);
        }
        for (let t = 0; t < N - 1; t++) assert.ok(maxAbsDiff(c[b]![t]!, p[b]![t]!) === 0, `row ${b}: visual position ${t} (before the drop, layer 0 full) unchanged`);
      }
    });

    test("reduced cache: per-layer lengths, decoding continues at the original length (= reference recomputation), no growth", async () => {
      const reducer = fastvReducer({ layer: 2, budget: 2 });
      const steps = 3;
      const before = tf.memory().numTensors;
      const cache = lm.newCache();
      const o = lm.forward({ inputsEmbeds: embeds, cache, lastLogitsOnly: true, reduction: { reducer, visualPositions } });
      assert.deepEqual([0, 1, 2].map((l) => cache.length(l)), [T, T, T - N + 2]);
      assert.deepEqual(Array.from(await cache.nextPosition!.data()), [T, T]);
      const kept = o.reduction!.keptPositions;
      let logits = o.logits;
      const ids: number[][] = [[], []];
      const stepLogits: Float32Array[][] = [[], []];
      for (let s = 0; s < steps; s++) {
        const r = await rowsOf(logits);
        logits.dispose();
        const next = r.map((row) => {
          const v = row[0]!;
          return v.indexOf(Math.max(...v));
        });
        next.forEach((t, b) => (ids[b]!.push(t), stepLogits[b]!.push(r[b]![0]!)));
        const x = tf.tensor2d(next, [B, 1], "int32");
        logits = lm.forward({ inputIds: x, cache, lastLogitsOnly: true }).logits;
        x.dispose();
      }
      logits.dispose();
      assert.deepEqual([0, 1, 2].map((l) => cache.length(l)), [T + steps, T + steps, T - N + 2 + steps]);
      assert.deepEqual(Array.from(await cache.nextPosition!.data()), [T + steps, T + steps]);
      cache.dispose();
      assert.equal(tf.memory().numTensors, before, "no tensor growth across the reduced prefill and decoding");
      // Reference: recompute prefill + generated tokens, layers >= 2 on the kept prefill positions + every new token.
      for (let b = 0; b < B; b++) {
        for (let s = 0; s < steps; s++) {
          const seq = [...rowEmbeds(b), ...ids[b]!.slice(0, s).map((id) => ref.embed(id))];
          const keep = [...kept[b]!, ...Array.from({ length: s }, (_, i) => T + i)];
          const want = ref.forward(seq, [...Array(T + s).keys()], { layer: 2, keep });
          const d = maxAbsDiff(stepLogits[b]![s]!, want.at(-1)!);
          assert.ok(d < 1e-4, `row ${b} step ${s}: cached decode differs from recomputation by ${d}`);
        }
      }
    });

    test("left padding: a padded row gives the same kept set and logits as alone", async () => {
      // Row 1 = golden row 1 without its last two text tokens, left-padded by 2: visual tokens at 2..6.
      const pad = new Float32Array(2 * C);
      const row1 = embedsData.subarray(T * C, (2 * T - 2) * C);
      const batched = tf.tensor3d(Float32Array.from([...embedsData.subarray(0, T * C), ...pad, ...row1]), [B, T, C]);
      const mask = tf.tensor2d([...Array(T).fill(1), 0, 0, ...Array(T - 2).fill(1)], [B, T]);
      const alone = tf.tensor3d(Float32Array.from(row1), [1, T - 2, C]);
      for (const reducer of [fastvReducer({ layer: 2, budget: 2 }), schedule([N, N, 2]), topvReducer({ layer: 1, budget: 3, grid: ROW })]) {
        const a = lm.forward({ inputsEmbeds: batched, attentionMask: mask, lastLogitsOnly: true, reduction: { reducer, visualPositions: [VIS, VIS.map((v) => v + 2)] } });
        const s = lm.forward({ inputsEmbeds: alone, lastLogitsOnly: true, reduction: { reducer, visualPositions: [VIS] } });
        const [ra, rs] = [await rowsOf(a.logits), await rowsOf(s.logits)];
        tf.dispose([a.logits, s.logits]);
        assert.deepEqual(a.reduction!.decisions[0]!.kept[1], s.reduction!.decisions[0]!.kept[0], `${reducer.name}: kept set`);
        const d = maxAbsDiff(ra[1]![0]!, rs[0]![0]!);
        assert.ok(d < 1e-4, `${reducer.name}: padded row's last logits differ from alone by ${d}`);
      }
      tf.dispose([batched, mask, alone]);
    });

    test("a reducer that breaks the rules is refused with the layer and row", () => {
      const uneven: InLlmReducer = { name: "uneven", decisions: () => [{ layer: 1 }], decide: (d) => d.alive.map((a, b) => a.slice(0, b + 1)) };
      assert.throws(() => lm.forward({ inputsEmbeds: embeds, reduction: { reducer: uneven, visualPositions } }), /"uneven", layer 1: row 1 keeps 2 visual tokens, row 0 keeps 1/);
      const stranger: InLlmReducer = { name: "stranger", decisions: () => [{ layer: 1 }], decide: (d) => d.alive.map(() => [7]) };
      assert.throws(() => lm.forward({ inputsEmbeds: embeds, reduction: { reducer: stranger, visualPositions } }), /row 0: visual token 7 is not alive/);
      assert.throws(() => lm.forward({ inputsEmbeds: embeds, reduction: { reducer: fastvReducer({ layer: 3 }), visualPositions } }), /K = 3 must be below the LLM's 3 layers/);
      assert.throws(() => lm.forward({ inputsEmbeds: embeds, reduction: { reducer: fastvReducer(), visualPositions: [VIS, [0, 1]] } }), /row 1 has 2 visual tokens/);
      assert.throws(() => schedule([N, 4, 4]), /layers 0 and 1 are never reduced/);
      assert.throws(() => lm.forward({ inputsEmbeds: embeds, reduction: { reducer: topvReducer({ layer: 2, budget: 2, grid: ROW }), visualPositions } }), /Li = 2 must be below/);
    });
  });
}

describe("in-LLM reduction in make-tiny's LLaVA (splice, wasm)", () => {
  let tmp: string;
  let vlm: Vlm;
  before(async () => {
    await setBackend("wasm");
    tmp = await mkdtemp(path.join(tmpdir(), "vzt-inllm-"));
    await makeTiny(tmp);
    vlm = await loadVlm({ model: path.join(tmp, "llava") });
  });
  after(async () => {
    vlm.dispose();
    await rm(tmp, { recursive: true, force: true });
  });

  test("full budget = plain forward; reduced: budget kept, batched = alone, generation continues, no growth", async () => {
    const P = 576;
    const visual = tf.randomNormal([2, P, vlm.projector.inDim], 0, 1, "float32", 3) as tf.Tensor3D;
    const rows = [
      [1, 5, 6, IMG, 7, 8, 9],
      [1, 5, IMG, 7, 8, 9, 10, 11, 12],
    ];
    const plain = vlmForwardFromVisual(vlm, visual, { inputIds: rows }, { padSide: "left", lastLogitsOnly: true });
    const want = await plain.logits.data();
    plain.logits.dispose();
    assert.equal(vlm.lm.config.layers, 2);
    for (const inLlm of [fastvReducer({ layer: 1, budget: P }), topvReducer({ layer: 0, budget: P })]) {
      const out = await assertNoTensorLeak(inLlm.name, () => {
        const o = vlmForwardFromVisual(vlm, visual, { inputIds: rows }, { padSide: "left", lastLogitsOnly: true, inLlm });
        const d = o.logits.dataSync().slice();
        o.logits.dispose();
        return d;
      });
      assert.ok(maxAbsDiff(out, want) <= 1e-6, `${inLlm.name} at full budget`);
    }
    for (const inLlm of [fastvReducer({ layer: 1, budget: 64 }), topvReducer({ layer: 0, budget: 64 })]) {
      const both = vlmForwardFromVisual(vlm, visual, { inputIds: rows }, { padSide: "left", lastLogitsOnly: true, inLlm });
      assert.deepEqual(both.reduction!.visualPerLayer, [P, 64]);
      const b1 = both.reduction!.decisions[0]!.kept[1]!;
      assert.equal(b1.length, 64);
      const second = tf.slice(visual, [1, 0, 0], [1, P, visual.shape[2]]);
      const alone = vlmForwardFromVisual(vlm, second, { inputIds: [rows[1]!] }, { padSide: "left", lastLogitsOnly: true, inLlm });
      assert.deepEqual(alone.reduction!.decisions[0]!.kept[0], b1, `${inLlm.name}: row 1's kept set batched = alone`);
      const d = maxAbsDiff((await both.logits.data()).slice(vlm.lm.config.vocab), await alone.logits.data());
      assert.ok(d < 1e-4, `${inLlm.name}: row 1 batched vs alone ${d}`);
      tf.dispose([both.logits, alone.logits, second]);
    }
    visual.dispose();
  });

  test("vlmGenerate with FastV: greedy ids are deterministic and leave no tensors", async () => {
    const pixels = tf.randomUniform([1, 3, 336, 336], -1, 1, "float32", 5) as tf.Tensor4D;
    const { buildReducer } = await import("../../reduce/reducer.js");
    const run = () => vlmGenerate(vlm, { inputIds: [[1, 5, IMG, 7, 8]], pixelValues: pixels }, buildReducer("none"), { maxNewTokens: 3, inLlm: fastvReducer({ layer: 1, budget: 32 }) });
    const a = await assertNoTensorLeak("vlmGenerate fastv", run);
    const b = await run();
    assert.equal(a[0]!.length, 3);
    assert.deepEqual(a, b);
    pixels.dispose();
  });
});
