// Gradient utilities: global norm and clipping as torch.nn.utils.clip_grad_norm_ (coef = max/(norm + 1e-6),
// clamped to 1), the finite check, and the accumulator (sum over micro-batches, no tensor growth, tidy-safe).
import { test } from "node:test";
import assert from "node:assert/strict";
import { tf, setBackend } from "../../core/backend.js";
import { assertNoTensorLeak } from "../../core/memory.js";
import { allFinite, clipGradNorm, globalNorm } from "../../train/clip.js";
import { GradAccumulator } from "../../train/grad_accumulator.js";

for (const backend of ["wasm", "cpu"] as const) {
  test(`clipGradNorm: norm 13 of {3,4} and {12}; clipped to max 1 and untouched under max 20 (${backend})`, async () => {
    await setBackend(backend, { quiet: true });
    const grads = { a: tf.tensor1d([3, 4]), b: tf.tensor2d([[12]]) };
    const n = globalNorm(grads);
    assert.equal(n.dataSync()[0], 13);
    n.dispose();
    const clipped = await assertNoTensorLeak("clip", () => {
      const r = clipGradNorm(grads, 1);
      const out = { norm: r.norm, scale: r.scale, a: Array.from(r.grads.a!.dataSync()), b: Array.from(r.grads.b!.dataSync()) };
      tf.dispose(r.grads);
      return out;
    });
    const coef = 1 / (13 + 1e-6); // torch: max_norm / (total_norm + 1e-6)
    assert.equal(clipped.norm, 13);
    assert.ok(Math.abs(clipped.scale - coef) < 1e-15);
    for (const [got, want] of [[clipped.a, [3 * coef, 4 * coef]], [clipped.b, [12 * coef]]] as const) {
      got.forEach((x, i) => assert.ok(Math.abs(x - want[i]!) < 1e-7, `${x} vs ${want[i]}`));
    }
    const r2 = clipGradNorm(grads, 20);
    assert.equal(r2.scale, 1);
    assert.deepEqual(Array.from(r2.grads.a!.dataSync()), [3, 4]);
    assert.notEqual(r2.grads.a, grads.a, "new tensors, the caller owns them");
    const r3 = clipGradNorm(grads, 13); // coef = 13 / 13.000001 < 1: torch scales (barely)
    assert.ok(r3.scale < 1 && r3.scale > 0.9999999);
    assert.throws(() => clipGradNorm(grads, 0), /maxNorm must be > 0/);
    tf.dispose([r2.grads, r3.grads, grads]);
  });

  test(`allFinite catches NaN, +Inf and -Inf; a non-finite norm leaves gradients unscaled (${backend})`, async () => {
    await setBackend(backend, { quiet: true });
    const ok = [tf.tensor1d([1, -2, 3e38]), tf.zeros([2, 2])];
    assert.equal(await assertNoTensorLeak("allFinite", () => allFinite(ok)), true);
    assert.equal(allFinite([]), true);
    for (const bad of [NaN, Infinity, -Infinity]) {
      const t = tf.tensor1d([0, bad, 1]);
      assert.equal(allFinite({ ok: ok[0]!, t }), false, String(bad));
      const r = clipGradNorm({ t }, 1);
      assert.ok(!Number.isFinite(r.norm));
      assert.equal(r.scale, 1);
      tf.dispose([t, r.grads]);
    }
    tf.dispose(ok);
  });

  test(`GradAccumulator: sum of 3 micro-batches, take(1/3) = mean, constant tensor count, survives tf.tidy (${backend})`, async () => {
    await setBackend(backend, { quiet: true });
    const acc = new GradAccumulator();
    const micro = [[1, 2], [3, 5], [-1, 8]];
    const before = tf.memory().numTensors;
    for (const [i, m] of micro.entries()) {
      tf.tidy(() => acc.add({ w: tf.tensor1d(m), b: tf.scalar(i) })); // grads made and freed inside a tidy
      assert.equal(tf.memory().numTensors, before + 2, `after micro-batch ${i}: only the two sums are held`);
    }
    assert.equal(acc.microBatches, 3);
    const mean = acc.take(1 / 3);
    assert.equal(acc.microBatches, 0);
    assert.equal(tf.memory().numTensors, before + 2, "sums released, two results returned");
    const w = mean.w!.dataSync();
    assert.ok(Math.abs(w[0]! - 1) < 1e-6 && Math.abs(w[1]! - 5) < 1e-6);
    assert.ok(Math.abs(mean.b!.dataSync()[0]! - 1) < 1e-6);
    tf.dispose(mean);
    assert.throws(() => acc.take(), /no gradients were added/);
    const w1 = tf.tensor1d([1, 2]), w2 = tf.tensor1d([1, 2, 3]);
    acc.add({ w: w1 });
    assert.throws(() => acc.add({ w: w2 }), /"w" has shape \[3\], expected \[2\]/);
    acc.dispose();
    tf.dispose([w1, w2]);
    assert.equal(tf.memory().numTensors, before);
  });
}
