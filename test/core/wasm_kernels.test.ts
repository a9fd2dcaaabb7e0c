// The wasm kernel overrides (core/wasm_kernels.ts) keep tfjs's semantics. Identity shares the data instead of copying
// it: a clone outlives its source, the memory counters stay balanced, and gradients through ops that save their
// inputs (cloned by the engine while a tape records) equal the cpu backend's.
import { test } from "node:test";
import assert from "node:assert/strict";
import { setBackend, tf } from "../../core/backend.js";

test("[wasm] tf.clone shares data safely: the clone outlives its source, memory counters balance", async () => {
  await setBackend("wasm", { quiet: true });
  const before = tf.memory();
  const x = tf.tensor2d([1, 2, 3, 4, 5, 6], [2, 3]);
  const y = tf.clone(x);
  assert.equal(tf.memory().numTensors, before.numTensors + 2);
  x.dispose();
  assert.deepEqual(Array.from(y.dataSync()), [1, 2, 3, 4, 5, 6], "the clone still reads its values after the source is disposed");
  const z = y.add(1);
  y.dispose();
  assert.deepEqual(Array.from(z.dataSync()), [2, 3, 4, 5, 6, 7]);
  z.dispose();
  assert.equal(tf.memory().numTensors, before.numTensors);
  assert.equal(tf.memory().numBytes, before.numBytes, "every buffer freed");
  // A variable assigned a clone keeps its value when the clone's source goes away.
  const v = tf.variable(tf.zeros([3]));
  const src = tf.tensor1d([7, 8, 9]);
  v.assign(tf.clone(src));
  src.dispose();
  assert.deepEqual(Array.from(v.dataSync()), [7, 8, 9]);
  v.dispose();
});

test("[wasm] gradients through saved tensors equal the cpu backend's", async () => {
  const run = async (backend: "wasm" | "cpu") => {
    await setBackend(backend, { quiet: true });
    const a = tf.tensor2d(Array.from({ length: 12 }, (_, i) => Math.sin(i + 1)), [3, 4]);
    const b = tf.tensor2d(Array.from({ length: 8 }, (_, i) => Math.cos(i + 2)), [4, 2]);
    const f = (p: tf.Tensor) => tf.sigmoid(tf.matMul(p, b)).mul(tf.softmax(tf.matMul(p, b), -1)).sum() as tf.Scalar;
    const g = tf.grad(f)(a);
    const out = Array.from(g.dataSync());
    tf.dispose([a, b, g]);
    return out;
  };
  const wasm = await run("wasm");
  const cpu = await run("cpu");
  await setBackend("wasm", { quiet: true });
  assert.equal(wasm.length, cpu.length);
  wasm.forEach((v, i) => assert.ok(Math.abs(v - cpu[i]!) < 1e-5, `grad[${i}]: wasm ${v} vs cpu ${cpu[i]}`));
});
