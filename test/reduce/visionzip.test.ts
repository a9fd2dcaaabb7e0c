// VisionZip against the golden vectors of the official PyTorch code (every case the manifest lists, on wasm and
// cpu), plus budgets, errors, keepCls false, full-attention input and tensor hygiene.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import path from "node:path";
import { tf, setBackend } from "../../core/backend.js";
import { assertNoTensorLeak } from "../../core/memory.js";
import { ConfigError } from "../../core/errors.js";
import { visionZip, type VisionZipResult } from "../../reduce/visionzip.js";
import { VISIONZIP_SPLITS, visionZipSplit, checkVisionZipBudget } from "../../reduce/budget.js";
import { goldenDir, maxAbsDiff } from "../helpers.js";

interface Arr {
  shape: number[];
  dtype: string;
  data: number[];
}
interface GoldenCase {
  case: string;
  params: { B: number; H: number; N: number; C: number; Ck: number; dominant: number; contextual: number };
  inputs: Record<string, Arr>;
  expected: Record<string, Arr>;
}

const dir = path.join(goldenDir(), "visionzip");
const manifest = JSON.parse(readFileSync(path.join(dir, "manifest.json"), "utf8")) as { cases: { file: string }[] };
const cases: GoldenCase[] = manifest.cases.map((c) => JSON.parse(readFileSync(path.join(dir, c.file), "utf8")) as GoldenCase);

const t3 = (a: Arr) => tf.tensor3d(Float32Array.from(a.data), a.shape as [number, number, number]);
const rows = (a: Arr): number[][] => {
  const [B, K] = a.shape as [number, number];
  return Array.from({ length: B }, (_, b) => a.data.slice(b * K, (b + 1) * K));
};

function run(g: GoldenCase, attnName: "attn_cls_row" | "attn_full", keepCls?: boolean): [VisionZipResult, Float32Array] {
  const a = g.inputs[attnName]!;
  const attention = tf.tensor(Float32Array.from(a.data), a.shape);
  const hidden = t3(g.inputs.hidden_states!);
  const keys = t3(g.inputs.metric!);
  const r = visionZip({ attention, hidden, keys }, { dominant: g.params.dominant, contextual: g.params.contextual, keepCls });
  const out = r.tokens.dataSync() as Float32Array;
  tf.dispose([attention, hidden, keys, r.tokens]);
  return [r, out];
}

function checkAgainstGolden(g: GoldenCase, r: VisionZipResult, tokens: Float32Array, what: string): void {
  const e = g.expected;
  assert.deepEqual(r.dominantIndices, rows(e.dominant_indices_sorted!), `${what}: dominantIndices`);
  assert.deepEqual(r.targetIndices, rows(e.target_indices!), `${what}: targetIndices`);
  assert.deepEqual(r.mergeIndices, rows(e.merge_indices!), `${what}: mergeIndices`);
  assert.deepEqual(r.assignment, rows(e.assignment!), `${what}: assignment`);
  assert.deepEqual(r.counts, rows(e.counts!), `${what}: counts`);
  // keep index: same set as torch.topk (order among equal scores is unspecified), CLS first
  const topk = rows(e.dominant_indices_topk_order!);
  r.keepIndices.forEach((k, b) => {
    assert.equal(k[0], 0, `${what}: keepIndices[${b}] starts with CLS`);
    assert.deepEqual([...k].sort((x, y) => x - y), [...topk[b]!].sort((x, y) => x - y), `${what}: keepIndices[${b}]`);
  });
  assert.deepEqual(
    [g.params.B, g.params.dominant + g.params.contextual, g.params.C],
    e.output_tokens!.shape,
    `${what}: golden shape`,
  );
  const d = maxAbsDiff(tokens, Float32Array.from(e.output_tokens!.data));
  assert.ok(d <= 1e-5, `${what}: tokens max |diff| ${d} > 1e-5`);
}

for (const backend of ["wasm", "cpu"] as const) {
  test(`visionZip matches every golden case (${backend})`, async () => {
    await setBackend(backend, { quiet: true });
    assert.ok(cases.length >= 5, "manifest lists the golden cases");
    for (const g of cases) {
      const [r, tokens] = await assertNoTensorLeak(`${g.case} (${backend})`, () => run(g, "attn_cls_row"));
      checkAgainstGolden(g, r, tokens, `${g.case} (${backend})`);
    }
  });

  test(`full [B,H,N,N] attention gives the same result as its CLS rows (${backend})`, async () => {
    await setBackend(backend, { quiet: true });
    const withFull = cases.filter((g) => g.inputs.attn_full);
    assert.ok(withFull.length >= 4);
    for (const g of withFull) {
      const [rRow, tRow] = run(g, "attn_cls_row");
      const [rFull, tFull] = run(g, "attn_full");
      assert.deepEqual(rFull, { ...rRow, tokens: rFull.tokens }, `${g.case}: indices`);
      assert.deepEqual(tFull, tRow, `${g.case}: tokens`);
      checkAgainstGolden(g, rFull, tFull, `${g.case} full attention (${backend})`);
    }
  });

  test(`keepCls false drops exactly the CLS row (${backend})`, async () => {
    await setBackend(backend, { quiet: true });
    for (const g of cases) {
      const [r, tokens] = run(g, "attn_cls_row", false);
      const { B, C, dominant, contextual } = g.params;
      assert.deepEqual(r.tokens.shape, [B, dominant - 1 + contextual, C]);
      assert.equal(r.dominantIndices[0]![0], 0, "dominantIndices still start with CLS");
      const want = g.expected.output_tokens!.data;
      const T = dominant + contextual;
      const expected = new Float32Array(B * (T - 1) * C);
      for (let b = 0; b < B; b++) expected.set(want.slice((b * T + 1) * C, (b + 1) * T * C), b * (T - 1) * C);
      const d = maxAbsDiff(tokens, expected);
      assert.ok(d <= 1e-5, `${g.case}: keepCls false tokens max |diff| ${d}`);
    }
  });
}

test("no merge candidates (dominant + contextual = N): output is every token, dominant then targets", async () => {
  await setBackend("wasm", { quiet: true });
  const g = cases.find((c) => c.case.startsWith("a_small")) ?? cases[0]!;
  const { N, C } = g.params;
  const hidden = t3(g.inputs.hidden_states!);
  const keys = t3(g.inputs.metric!);
  const attention = t3(g.inputs.attn_cls_row!);
  const r = await assertNoTensorLeak("visionZip M = contextual", () => {
    const out = visionZip({ attention, hidden, keys }, { dominant: N - 5, contextual: 5 });
    out.tokens.dispose();
    return out;
  });
  assert.deepEqual(r.mergeIndices.map((m) => m.length), r.mergeIndices.map(() => 0));
  const out = visionZip({ attention, hidden, keys }, { dominant: N - 5, contextual: 5 });
  const h = g.inputs.hidden_states!.data;
  for (let b = 0; b < g.params.B; b++) {
    const order = [...out.dominantIndices[b]!, ...out.targetIndices[b]!];
    assert.deepEqual([...order].sort((x, y) => x - y), Array.from({ length: N }, (_, j) => j));
    const expected = Float32Array.from(order.flatMap((j) => h.slice((b * N + j) * C, (b * N + j + 1) * C)));
    const got = out.tokens.slice([b, 0, 0], [1, N, C]);
    assert.deepEqual(got.dataSync(), expected);
    got.dispose();
  }
  tf.dispose([hidden, keys, attention, out.tokens]);
});

test("budgets: official splits, the 6.4:1 rule for other totals", () => {
  assert.deepEqual(visionZipSplit(64), { dominant: 54, contextual: 10 });
  assert.deepEqual(visionZipSplit(128), { dominant: 108, contextual: 20 });
  assert.deepEqual(visionZipSplit(192), { dominant: 162, contextual: 30 });
  assert.deepEqual(Object.keys(VISIONZIP_SPLITS).sort(), ["128", "192", "64"]);
  assert.deepEqual(visionZipSplit(32), { dominant: 27, contextual: 5 }); // LLaVA-NeXT per sub-image (640 / 5 / 4)
  assert.deepEqual(visionZipSplit(160), { dominant: 135, contextual: 25 }); // LLaVA-NeXT 160 total
  assert.deepEqual(visionZipSplit(2), { dominant: 1, contextual: 1 });
  assert.deepEqual(visionZipSplit(100), { dominant: 84, contextual: 16 });
  for (const bad of [1, 0, -64, 64.5, Number.NaN]) {
    assert.throws(() => visionZipSplit(bad), (e: Error) => e instanceof ConfigError && /reducer\.budget/.test(e.message));
  }
});

test("invalid budgets fail naming the key", async () => {
  await setBackend("wasm", { quiet: true });
  const cases_: [number, number, RegExp][] = [
    [10, 0, /reducer\.contextual/],
    [0, 4, /reducer\.dominant/],
    [2.5, 4, /reducer\.dominant/],
    [10, 1.5, /reducer\.contextual/],
    [45, 6, /reducer\.budget.*51.*50 tokens/],
  ];
  const g = cases.find((c) => c.case.startsWith("a_small")) ?? cases[0]!;
  const hidden = t3(g.inputs.hidden_states!);
  const keys = t3(g.inputs.metric!);
  const attention = t3(g.inputs.attn_cls_row!);
  for (const [dominant, contextual, re] of cases_) {
    await assertNoTensorLeak(`bad budget ${dominant}+${contextual}`, () =>
      assert.throws(() => visionZip({ attention, hidden, keys }, { dominant, contextual }), (e: Error) => e instanceof ConfigError && re.test(e.message)),
    );
  }
  assert.throws(() => checkVisionZipBudget(10, 4, 13), /reducer\.budget/);
  assert.doesNotThrow(() => checkVisionZipBudget(10, 4, 14));
  // shape errors name the tensor
  const bad = tf.zeros([2, 4, 49]);
  assert.throws(() => visionZip({ attention: bad, hidden, keys }, { dominant: 10, contextual: 4 }), /attention/);
  tf.dispose([hidden, keys, attention, bad]);
});
