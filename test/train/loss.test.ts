// Shifted masked cross-entropy: hand values, a float64 restatement of HF LlamaForCausalLM's loss (shift, -100
// ignored, logsumexp), a central finite-difference gradient of that restatement, stability, empty masks, errors.
import { test } from "node:test";
import assert from "node:assert/strict";
import { tf, setBackend } from "../../core/backend.js";
import { assertNoTensorLeak } from "../../core/memory.js";
import { IGNORE_INDEX, maskedCrossEntropySum } from "../../train/loss.js";

const X = IGNORE_INDEX;

/** float64 reference: sum over b, t < T-1 with labels[b][t+1] != -100 of logsumexp(z[b][t]) - z[b][t][label]. */
function refLoss(z: number[][][], labels: number[][]): { sum: number; count: number } {
  let sum = 0, count = 0;
  for (let b = 0; b < z.length; b++) {
    for (let t = 0; t + 1 < z[b]!.length; t++) {
      const y = labels[b]![t + 1]!;
      if (y === X) continue;
      const row = z[b]![t]!;
      const m = Math.max(...row);
      const lse = m + Math.log(row.reduce((s, x) => s + Math.exp(x - m), 0));
      sum += lse - row[y]!;
      count++;
    }
  }
  return { sum, count };
}

/** Deterministic logits in [-3, 3): a closed form, not a PRNG. */
function fixedLogits(B: number, T: number, V: number): number[][][] {
  return Array.from({ length: B }, (_, b) =>
    Array.from({ length: T }, (_, t) => Array.from({ length: V }, (_, v) => 3 * Math.sin(1.7 * b + 0.9 * t + 2.3 * v + 0.4))));
}

const LABELS = [
  [X, X, 2, 0, X, 1],   // two runs in row 0 (positions 2-3, 5)
  [X, 4, 4, X, X, X],   // one run in row 1
  [X, X, X, X, X, 3],   // only the last position
];

for (const backend of ["wasm", "cpu"] as const) {
  test(`hand values: uniform logits give ln V, [1,2,3,4] -> 4 - logsumexp (${backend})`, async () => {
    await setBackend(backend, { quiet: true });
    const logits = tf.tensor3d([[[0, 0, 0, 0], [1, 2, 3, 4], [9, 9, 9, 9]]]); // the last position predicts nothing
    const labels = tf.tensor2d([[X, 1, 3]], undefined, "int32");
    const { sum, count } = await assertNoTensorLeak("loss", () => {
      const r = maskedCrossEntropySum(logits, labels);
      return { sum: r.sum.dataSync()[0]!, count: (r.sum.dispose(), r.count) };
    });
    assert.equal(count, 2);
    const want = Math.log(4) + (Math.log(Math.exp(1) + Math.exp(2) + Math.exp(3) + Math.exp(4)) - 4); // 1.38629 + 0.44019
    assert.ok(Math.abs(sum - want) < 1e-6, `${sum} vs ${want}`);
    assert.ok(Math.abs(want - 1.8264840596810870) < 1e-12);
    tf.dispose([logits, labels]);
  });

  test(`matches the float64 reference and its finite-difference gradient (${backend})`, async () => {
    await setBackend(backend, { quiet: true });
    const [B, T, V] = [3, 6, 5];
    const z = fixedLogits(B, T, V);
    const logits = tf.tensor3d(z);
    const labels = tf.tensor2d(LABELS, undefined, "int32");
    const ref = refLoss(z, LABELS);
    assert.equal(ref.count, 6);
    const r = maskedCrossEntropySum(logits, labels);
    assert.equal(r.count, ref.count);
    assert.ok(Math.abs(r.sum.dataSync()[0]! - ref.sum) < 1e-5 * ref.sum, `sum ${r.sum.dataSync()[0]} vs ${ref.sum}`);
    r.sum.dispose();

    const grad = await assertNoTensorLeak("grad", () => {
      const g = tf.grad((x) => maskedCrossEntropySum(x as tf.Tensor3D, labels).sum)(logits);
      const d = g.dataSync().slice();
      g.dispose();
      return d;
    });
    const h = 1e-6;
    let worst = 0;
    for (let b = 0; b < B; b++) for (let t = 0; t < T; t++) for (let v = 0; v < V; v++) {
      const zp = structuredClone(z), zm = structuredClone(z);
      zp[b]![t]![v]! += h;
      zm[b]![t]![v]! -= h;
      const fd = (refLoss(zp, LABELS).sum - refLoss(zm, LABELS).sum) / (2 * h);
      const got = grad[(b * T + t) * V + v]!;
      worst = Math.max(worst, Math.abs(got - fd));
      if (t === T - 1 || LABELS[b]![t + 1] === X) assert.equal(got, 0, `no loss flows to [${b},${t},${v}]`);
    }
    assert.ok(worst < 1e-5, `max |autodiff - finite difference| = ${worst}`);
    tf.dispose([logits, labels]);
  });

  test(`numerically stable for logits of +-1000 (${backend})`, async () => {
    await setBackend(backend, { quiet: true });
    const logits = tf.tensor3d([[[1000, 0, -1000], [0, 0, 0]], [[-1000, 1000, 0], [0, 0, 0]]]);
    const labels = tf.tensor2d([[X, 0], [X, 2]], undefined, "int32");
    const r = maskedCrossEntropySum(logits, labels);
    assert.equal(r.count, 2);
    assert.ok(Math.abs(r.sum.dataSync()[0]! - 1000) < 1e-3, `got ${r.sum.dataSync()[0]}`);
    tf.dispose([logits, labels, r.sum]);
  });

  test(`all -100: sum 0, count 0, gradient zeros (not an error), even with a NaN logit (${backend})`, async () => {
    await setBackend(backend, { quiet: true });
    const z = fixedLogits(2, 3, 4);
    z[0]![0]![0] = NaN;
    const logits = tf.tensor3d(z);
    const labels = tf.fill([2, 3], X, "int32") as tf.Tensor2D;
    const r = maskedCrossEntropySum(logits, labels);
    assert.deepEqual([r.sum.dataSync()[0], r.count], [0, 0]);
    const g = tf.grad((x) => maskedCrossEntropySum(x as tf.Tensor3D, labels).sum)(logits);
    assert.deepEqual(Array.from(g.dataSync()), new Array(24).fill(0));
    tf.dispose([logits, labels, r.sum, g]);
  });
}

test("summed loss over two micro-batches / total count = token mean over the whole batch", async () => {
  await setBackend("cpu", { quiet: true });
  const z = fixedLogits(3, 6, 5);
  const whole = refLoss(z, LABELS);
  const parts = [[0, 2], [2, 3]].map(([a, b]) => {
    const logits = tf.tensor3d(z.slice(a, b)), labels = tf.tensor2d(LABELS.slice(a, b), undefined, "int32");
    const r = maskedCrossEntropySum(logits, labels);
    const out = { sum: r.sum.dataSync()[0]!, count: r.count };
    tf.dispose([logits, labels, r.sum]);
    return out;
  });
  const mean = (parts[0]!.sum + parts[1]!.sum) / (parts[0]!.count + parts[1]!.count);
  assert.ok(Math.abs(mean - whole.sum / whole.count) < 1e-6);
});

test("bad labels are named: out of vocabulary (row, position), wrong dtype, wrong shape", async () => {
  await setBackend("cpu", { quiet: true });
  const logits = tf.zeros([2, 3, 4]) as tf.Tensor3D;
  const oov = tf.tensor2d([[X, 1, 2], [X, X, 4]], undefined, "int32");
  assert.throws(() => maskedCrossEntropySum(logits, oov), /row 1, column "labels": label 4 at position 2 is outside the vocabulary \[0, 4\)/);
  const neg = tf.tensor2d([[X, -1, 2], [X, X, 0]], undefined, "int32");
  assert.throws(() => maskedCrossEntropySum(logits, neg), /row 0.*label -1 at position 1/);
  const f = tf.tensor2d([[X, 1, 2], [X, X, 0]]);
  assert.throws(() => maskedCrossEntropySum(logits, f), /labels must be int32, got float32/);
  const short = tf.tensor2d([[X, 1]], undefined, "int32");
  assert.throws(() => maskedCrossEntropySum(logits, short), /labels shape \[1,2\] does not match logits \[2,3,4\]/);
  tf.dispose([logits, oov, neg, f, short]);
});
