// AdamW against the torch.optim.AdamW recurrence restated in float64 JS (_single_tensor_adamw: decay, lerp,
// addcmul, bias corrections, eps after sqrt), with and without weight decay; exact state round trip; no growth.
import { test } from "node:test";
import assert from "node:assert/strict";
import { tf, setBackend } from "../../core/backend.js";
import { assertNoTensorLeak } from "../../core/memory.js";
import { AdamW, type AdamWState } from "../../train/optimizer.js";

/** The tiny problem: loss = sum(c * (p - target)^2) per variable, so grad = 2c(p - target). */
const INIT = { w: [0.5, -1.25, 2, 0.75], b: [0.1, -0.2, 0.3, 1e-3] }; // b is [2, 2]
const TARGET = { w: [1, 1, 1, 0.75], b: [0, 0, 0, 1e-3 - 5e-10] }; // w[3] has grad 0; b[3] a tiny grad (eps matters)
const C = 1.5;
const LRS = [0.1, 0.05, 0.02];

interface Ref { p: number[]; m: number[]; v: number[] }

/** torch.optim.AdamW for one parameter tensor, float64. */
function torchAdamW(ref: Ref, grad: number[], lr: number, t: number, o: { b1: number; b2: number; eps: number; wd: number }): void {
  const bc1 = 1 - o.b1 ** t;
  const bc2Sqrt = Math.sqrt(1 - o.b2 ** t);
  const stepSize = lr / bc1;
  for (let i = 0; i < ref.p.length; i++) {
    const g = grad[i]!;
    ref.p[i] = ref.p[i]! * (1 - lr * o.wd); // param.mul_(1 - lr * weight_decay)
    ref.m[i] = ref.m[i]! + (g - ref.m[i]!) * (1 - o.b1); // exp_avg.lerp_(grad, 1 - beta1)
    ref.v[i] = ref.v[i]! * o.b2 + g * g * (1 - o.b2); // exp_avg_sq.mul_(beta2).addcmul_(grad, grad, 1 - beta2)
    const denom = Math.sqrt(ref.v[i]!) / bc2Sqrt + o.eps; // (exp_avg_sq.sqrt() / bc2_sqrt).add_(eps)
    ref.p[i] = ref.p[i]! - stepSize * (ref.m[i]! / denom); // param.addcdiv_(exp_avg, denom, value=-step_size)
  }
}

function reference(steps: number, wd: number): Record<"w" | "b", Ref> {
  const o = { b1: 0.9, b2: 0.999, eps: 1e-8, wd };
  const refs = {
    w: { p: INIT.w.map(Math.fround), m: [0, 0, 0, 0], v: [0, 0, 0, 0] },
    b: { p: INIT.b.map(Math.fround), m: [0, 0, 0, 0], v: [0, 0, 0, 0] },
  };
  for (let t = 1; t <= steps; t++) {
    for (const k of ["w", "b"] as const) {
      // the parameters and targets start as float32 values, as in a float32 torch model
      const grad = refs[k].p.map((p, i) => 2 * C * (p - Math.fround(TARGET[k][i]!)));
      torchAdamW(refs[k], grad, LRS[t - 1]!, t, o);
    }
  }
  return refs;
}

function makeVars(): Record<string, tf.Variable> {
  return { w: tf.variable(tf.tensor1d(INIT.w)), b: tf.variable(tf.tensor2d(INIT.b, [2, 2])) };
}

/** grads of the tiny loss by autodiff (tf.variableGrads keys them by tf's variable names: mapped back to ours). */
function tinyGrads(vars: Record<string, tf.Variable>): Record<string, tf.Tensor> {
  const tw = tf.tensor1d(TARGET.w), tb = tf.tensor2d(TARGET.b, [2, 2]);
  const { value, grads } = tf.variableGrads(
    () => tf.add(tf.sum(tf.mul(C, tf.square(tf.sub(vars.w!, tw)))), tf.sum(tf.mul(C, tf.square(tf.sub(vars.b!, tb))))) as tf.Scalar,
    Object.values(vars),
  );
  value.dispose(); tw.dispose(); tb.dispose();
  return Object.fromEntries(Object.entries(vars).map(([k, v]) => [k, grads[v.name]!]));
}

function applyStep(opt: AdamW, vars: Record<string, tf.Variable>, lr: number): void {
  const grads = tinyGrads(vars);
  opt.step(grads, lr);
  tf.dispose(grads);
}

function assertClose(got: ArrayLike<number>, want: number[], what: string): void {
  for (let i = 0; i < want.length; i++) {
    const tol = 2e-6 * Math.max(1, Math.abs(want[i]!));
    assert.ok(Math.abs(got[i]! - want[i]!) <= tol, `${what}[${i}]: got ${got[i]}, want ${want[i]} (tol ${tol})`);
  }
}

for (const backend of ["wasm", "cpu"] as const) {
  for (const wd of [0, 0.1]) {
    test(`3 AdamW steps equal torch.optim.AdamW in float64, weight_decay ${wd} (${backend})`, async () => {
      await setBackend(backend, { quiet: true });
      const vars = makeVars();
      const opt = new AdamW(vars, { weightDecay: wd });
      for (let t = 1; t <= 3; t++) {
        await assertNoTensorLeak(`step ${t}`, () => applyStep(opt, vars, LRS[t - 1]!));
        const ref = reference(t, wd);
        assertClose(vars.w!.dataSync(), ref.w.p, `step ${t} w`);
        assertClose(vars.b!.dataSync(), ref.b.p, `step ${t} b`);
      }
      assert.equal(opt.stepCount, 3);
      const s = opt.state();
      assert.deepEqual(Object.keys(s.tensors).sort(), ["b.exp_avg", "b.exp_avg_sq", "w.exp_avg", "w.exp_avg_sq"]);
      const ref = reference(3, wd);
      assertClose(s.tensors["b.exp_avg"]!.dataSync(), ref.b.m, "b.exp_avg");
      assertClose(s.tensors["w.exp_avg_sq"]!.dataSync(), ref.w.v, "w.exp_avg_sq");
      assert.deepEqual(s.tensors["b.exp_avg_sq"]!.shape, [2, 2]);
      // The tiny gradient in b[3] makes eps matter: a different eps placement moves b[3] by more than the tolerance.
      assert.ok(Math.abs(vars.b!.dataSync()[3]! - INIT.b[3]!) > 1e-3 * 0.02, "b[3] moved");
      tf.dispose(s.tensors);
      opt.dispose();
      tf.dispose(Object.values(vars));
    });
  }

  test(`weight decay is decoupled: with zero gradients p <- p * (1 - lr*wd) each step (${backend})`, async () => {
    await setBackend(backend, { quiet: true });
    const p = tf.variable(tf.tensor1d([2, -4]));
    const opt = new AdamW({ p }, { weightDecay: 0.5 });
    const g = tf.zeros([2]);
    opt.step({ p: g }, 0.1);
    opt.step({ p: g }, 0.2);
    assertClose(p.dataSync(), [2 * 0.95 * 0.9, -4 * 0.95 * 0.9], "decayed");
    g.dispose(); opt.dispose(); p.dispose();
  });

  test(`state round trip: save after 2 steps -> load into a fresh optimizer -> step 3 equals uninterrupted (${backend})`, async () => {
    await setBackend(backend, { quiet: true });
    const a = makeVars();
    const optA = new AdamW(a, { weightDecay: 0.1 });
    applyStep(optA, a, LRS[0]!);
    applyStep(optA, a, LRS[1]!);
    // "checkpoint": parameters and optimizer state through host arrays, as safetensors would carry them
    const saved = optA.state();
    const host = Object.fromEntries(Object.entries(saved.tensors).map(([k, t]) => [k, { shape: t.shape, data: t.dataSync().slice() }]));
    const params = { w: a.w!.dataSync().slice(), b: a.b!.dataSync().slice() };
    tf.dispose(saved.tensors);
    applyStep(optA, a, LRS[2]!);

    const b = { w: tf.variable(tf.tensor1d(params.w)), b: tf.variable(tf.tensor2d(params.b, [2, 2])) };
    const optB = new AdamW(b, { weightDecay: 0.1 });
    const loaded: AdamWState = { step: saved.step, tensors: Object.fromEntries(Object.entries(host).map(([k, h]) => [k, tf.tensor(h.data, h.shape)])) };
    await assertNoTensorLeak("loadState", () => optB.loadState(loaded));
    tf.dispose(loaded.tensors); // loadState copied them
    assert.equal(optB.stepCount, 2);
    applyStep(optB, b, LRS[2]!);
    assert.deepEqual(Array.from(b.w.dataSync()), Array.from(a.w!.dataSync()));
    assert.deepEqual(Array.from(b.b.dataSync()), Array.from(a.b!.dataSync()));
    const sa = optA.state(), sb = optB.state();
    for (const k of Object.keys(sa.tensors)) assert.deepEqual(Array.from(sb.tensors[k]!.dataSync()), Array.from(sa.tensors[k]!.dataSync()), k);
    tf.dispose([sa.tensors, sb.tensors]);
    optA.dispose(); optB.dispose();
    tf.dispose([...Object.values(a), ...Object.values(b)]);
  });
}

test("bad gradients and states are named; construction and dispose leave no tensors", async () => {
  await setBackend("cpu", { quiet: true });
  const vars = makeVars();
  await assertNoTensorLeak("construct + dispose", () => new AdamW(vars).dispose());
  const opt = new AdamW(vars);
  const gw = tf.zeros([4]), gb = tf.zeros([2, 2]), bad = tf.zeros([4]);
  assert.throws(() => opt.step({ w: gw }, 0.1), /gradient "b" is missing/);
  assert.throws(() => opt.step({ w: gw, b: bad }, 0.1), /"b" has shape \[4\], expected \[2,2\]/);
  assert.throws(() => opt.step({ w: gw, b: gb, c: gw }, 0.1), /"c" is unexpected/);
  assert.throws(() => opt.step({ w: gw, b: gb }, NaN), /lr must be/);
  const s = opt.state();
  delete s.tensors["w.exp_avg_sq"];
  assert.throws(() => opt.loadState(s), /"w.exp_avg_sq" is missing/);
  assert.throws(() => new AdamW(vars, { betas: [1, 0.999] }), /betas\[0\]/);
  tf.dispose([gw, gb, bad, s.tensors]);
  opt.dispose();
  tf.dispose(Object.values(vars));
});
