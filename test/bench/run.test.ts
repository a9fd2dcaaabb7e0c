// The bench runner's pure parts: flag parsing, FLOP arithmetic against hand-computed and published numbers, summary
// statistics, and the results file's shape (every ratio key of issue 7). No timings.
import { test } from "node:test";
import assert from "node:assert/strict";
import { FIGURES, parseBenchArgs } from "../../bench/args.js";
import {
  clipEmbedFlops, clipLayerFlops, decoderLayerFlops, fastvPrefillFlops, kvCacheBytes, lmHeadFlops, matmulFlops, prefillStackFlops, trainStepFlops,
  type DecoderShape,
} from "../../bench/flops.js";
import { benchVocab, clipLargeConfig, clipShapeOf, decoderShapeOf, qwen2BenchConfig } from "../../bench/models.js";
import { buildResults, isoDate, markdownTable, RATIO_KEYS, resultsFileName, type FigureResult, type MachineInfo } from "../../bench/results.js";
import { pairedRatios, summarize } from "../../bench/timing.js";

const QWEN2_0_5B: DecoderShape = { hidden: 896, heads: 14, kvHeads: 2, headDim: 64, intermediate: 4864, vocab: 151936 };

test("flags: defaults, --quick, values, inline values and errors", () => {
  const d = parseBenchArgs([]);
  assert.equal(d.quick, false);
  assert.equal(d.backend, "wasm");
  assert.deepEqual([d.visionLayers, d.llmLayers, d.repeats, d.warmup, d.trainBatch, d.trainMicro], [2, 1, 5, 1, 8, 2]);
  assert.equal(d.streamBytes, 1e9);
  assert.equal(d.growthSteps, 100);
  assert.deepEqual(d.only, [...FIGURES]);
  assert.equal(d.out, "bench/results");
  assert.equal(d.threads, undefined);
  assert.equal(parseBenchArgs(["--threads", "2"]).threads, 2);

  const q = parseBenchArgs(["--quick"]);
  assert.equal(q.quick, true);
  assert.ok(q.repeats < d.repeats && q.streamBytes < d.streamBytes && q.growthSteps < d.growthSteps);

  const s = parseBenchArgs(["--backend", "cpu", "--vision-layers", "3", "--llm-layers=4", "--repeats", "7", "--out", "/tmp/x", "--only", "growth,peak"]);
  assert.deepEqual([s.backend, s.visionLayers, s.llmLayers, s.repeats, s.out], ["cpu", 3, 4, 7, "/tmp/x"]);
  assert.deepEqual(s.only, ["peak", "growth"], "figure order, not flag order");
  assert.equal(parseBenchArgs([], { VZT_BACKEND: "cpu" }).backend, "cpu");
  assert.equal(parseBenchArgs(["--backend", "wasm"], { VZT_BACKEND: "cpu" }).backend, "wasm", "the flag wins");

  assert.throws(() => parseBenchArgs(["--layers", "2"]), /unknown flag "--layers"/);
  assert.throws(() => parseBenchArgs(["--repeats", "0"]), /--repeats must be an integer >= 1/);
  assert.throws(() => parseBenchArgs(["--repeats", "two"]), /--repeats must be an integer/);
  assert.throws(() => parseBenchArgs(["--backend", "gpu"]), /--backend "gpu"/);
  assert.throws(() => parseBenchArgs(["--only", "vision,nope"]), /--only "nope"/);
  assert.throws(() => parseBenchArgs(["--out"]), /--out needs a value/);
  assert.throws(() => parseBenchArgs(["--train-batch", "8", "--train-micro", "3"]), /not a multiple/);
});

test("flops: GEMM and CLIP ViT-L/14-336 layer, hand-computed", () => {
  assert.equal(matmulFlops(1024, 1024, 1024), 2_147_483_648);
  const clip = clipShapeOf(clipLargeConfig(2));
  // N=577, C=1024, I=4096: qkv 2·577·1024·3072 = 3_630_170_112; scores + probs·V 2·(2·577·1024·577) = 1_363_677_184;
  // out 2·577·1024·1024 = 1_210_056_704; fc1 + fc2 2·(2·577·1024·4096) = 9_680_453_632.
  assert.equal(clipLayerFlops(clip), 3_630_170_112 + 1_363_677_184 + 1_210_056_704 + 9_680_453_632);
  assert.equal(clipLayerFlops(clip), 15_884_357_632);
  // patch conv: 576 patches x (14·14·3 = 588) x 1024 outputs
  assert.equal(clipEmbedFlops(clip), 2 * 576 * 588 * 1024);
});

test("flops: the decoder count matches Qwen2-0.5B's published 494,032,768 parameters", () => {
  // One token attending to itself: every weight is used once (2 FLOPs per weight) plus 2·H·(2·D) for attention.
  const H = QWEN2_0_5B.heads, D = QWEN2_0_5B.headDim, C = QWEN2_0_5B.hidden, V = QWEN2_0_5B.vocab;
  const weightsPerLayer = (decoderLayerFlops(QWEN2_0_5B, 1) - 2 * H * 2 * D) / 2;
  assert.equal(weightsPerLayer, 14_909_440);
  const biases = (H + 2 * QWEN2_0_5B.kvHeads) * D; // q/k/v biases
  const norms = 2 * C;
  assert.equal(24 * (weightsPerLayer + biases + norms) + C + V * C, 494_032_768);
  assert.equal(lmHeadFlops(QWEN2_0_5B, 1), 2 * V * C);
  // T = 616 (576 visual + 40 text), hand-computed: 19_728_400_384 per layer
  assert.equal(decoderLayerFlops(QWEN2_0_5B, 616), 19_728_400_384);
  assert.equal(prefillStackFlops(QWEN2_0_5B, 2, 616, 3), 3 * (2 * 19_728_400_384 + 2 * V * C));
  // With the cache: S = past + T keys
  assert.equal(decoderLayerFlops(QWEN2_0_5B, 1, 615) - decoderLayerFlops(QWEN2_0_5B, 1), 2 * H * 2 * D * 615);
  // FastV's MAC formula in FLOPs: 2·(4nd² + 2n²d + 3ndm)
  assert.equal(fastvPrefillFlops(QWEN2_0_5B, 1, 10), 2 * (4 * 10 * 896 * 896 + 2 * 100 * 896 + 3 * 10 * 896 * 4864));
});

test("flops: training step on a tiny shape, hand-computed", () => {
  const s: DecoderShape = { hidden: 4, heads: 2, kvHeads: 1, headDim: 2, intermediate: 8, vocab: 10 };
  // T=3: weight products qkv 2·3·4·8=192, o 2·3·4·4=96, gate/up 2·3·4·16=384, down 2·3·8·4=192 -> 864 (x2: fwd + dX);
  // attention 2 heads x 2 products x 2·3·2·3 = 144 (x3); lm_head 2·3·4·10 = 240 (x2);
  // projector 6->4->4 on 2 visual rows: 2·(2·2·6·4) + 3·(2·2·4·4) = 384.
  assert.equal(trainStepFlops(s, { inDim: 6, outDim: 4 }, 1, 3, 2, 1), 2 * 864 + 3 * 144 + 2 * 240 + 384);
  assert.equal(trainStepFlops(s, { inDim: 6, outDim: 4 }, 1, 3, 2, 5), 5 * 3024);
});

test("flops: KV-cache bytes and the bench decoder's scaled vocabulary", () => {
  // keys + values, 24 layers, 2 KV heads x 64, 616 positions, float32
  assert.equal(kvCacheBytes(QWEN2_0_5B, 24, 616), 2 * 24 * 2 * 616 * 64 * 4);
  assert.equal(kvCacheBytes(QWEN2_0_5B, 24, 616), 15_138_816);
  assert.equal(benchVocab(24), 151936);
  assert.equal(benchVocab(2), 12661); // 151936 / 12, rounded
  const cfg = qwen2BenchConfig(2);
  assert.deepEqual(decoderShapeOf(cfg), { ...QWEN2_0_5B, vocab: 12661 });
  assert.equal(cfg.tieEmbeddings, true);
  assert.equal(cfg.qkvBias, true);
});

test("summary statistics and paired ratios", () => {
  assert.deepEqual(summarize([3, 1, 2]), { median: 2, min: 1, max: 3, n: 3 });
  assert.deepEqual(summarize([4, 1, 3, 2]), { median: 2.5, min: 1, max: 4, n: 4 });
  assert.equal(summarize([]).n, 0);
  assert.deepEqual(pairedRatios([2, 9], [1, 3]), [2, 3]);
});

const machine: MachineInfo = { cpu: "test cpu", cores: 2, os: "Linux", node: "v20", tfjs: "4.22.0", backend: "wasm", threads: 1, loadavg: [0, 0, 0] };

function fakeFigures(): FigureResult[] {
  const ratios = Object.fromEntries(RATIO_KEYS.map((k, i) => [k, i + 0.5]));
  return [
    { group: "peak", peakGflops: 40, ratios: {}, rows: [{ figure: "1 peak GEMM", value: 40, unit: "GFLOP/s", target: "", shapes: "1024^3" }], details: {} },
    { group: "vision", ratios, rows: [{ figure: "2 vision utilisation", value: 0.3, target: ">= 0.6", pass: false, stats: summarize([0.3, 0.2, 0.4]), shapes: "x" }], details: { n: 1 } },
  ];
}

test("results file: every ratio key as a number, peak, machine, date; table rows", () => {
  const start = new Date(2026, 0, 2, 3, 4, 5);
  const r = buildResults({ start, backend: "wasm", machine, settings: { quick: false }, figures: fakeFigures(), seconds: 12 });
  assert.deepEqual(Object.keys(r.ratios), [...RATIO_KEYS]);
  assert.equal(RATIO_KEYS.length, 14);
  for (const k of RATIO_KEYS) assert.equal(typeof r.ratios[k], "number", k);
  assert.equal(r.peak_gflops, 40);
  assert.equal(r.complete, true);
  assert.equal(r.date, "2026-01-02");
  assert.equal(r.machine.cores, 2);
  assert.deepEqual(r.failures, ["2 vision utilisation: 0.300 (target >= 0.6)"]);
  const json = JSON.parse(JSON.stringify(r)) as { ratios: Record<string, unknown>; peak_gflops: unknown };
  assert.deepEqual(Object.keys(json.ratios).sort(), [...RATIO_KEYS].sort());
  assert.equal(resultsFileName(r.date, r.backend), "2026-01-02-wasm.json");
  assert.equal(isoDate(new Date(2026, 10, 21)), "2026-11-21");

  const table = markdownTable(fakeFigures().flatMap((f) => f.rows)).split("\n");
  assert.equal(table[0], "| figure | value | target | pass | median / min / max | shapes |");
  assert.equal(table.length, 4);
  assert.match(table[3]!, /\| 2 vision utilisation \| 0\.300 \| >= 0\.6 \| \*\*FAIL\*\* \| 0\.300 \/ 0\.200 \/ 0\.400 \| x \|/);
});

test("results file: missing figures give null ratios and complete=false; unknown keys are refused", () => {
  const partial = buildResults({ start: new Date(), backend: "cpu", machine, settings: {}, figures: [fakeFigures()[0]!], errors: { vision: "boom" }, seconds: 1 });
  assert.deepEqual(Object.keys(partial.ratios), [...RATIO_KEYS]);
  for (const k of RATIO_KEYS) assert.equal(partial.ratios[k], null);
  assert.equal(partial.complete, false);
  assert.deepEqual(partial.errors, { vision: "boom" });
  const bad: FigureResult = { group: "vision", ratios: { nope: 1 } as never, rows: [], details: {} };
  assert.throws(() => buildResults({ start: new Date(), backend: "cpu", machine, settings: {}, figures: [bad], seconds: 1 }), /unknown ratio "nope"/);
  const nan: FigureResult = { group: "growth", ratios: { tensor_growth: NaN }, rows: [], details: {} };
  assert.equal(buildResults({ start: new Date(), backend: "cpu", machine, settings: {}, figures: [nan], seconds: 1 }).ratios.tensor_growth, null);
});
