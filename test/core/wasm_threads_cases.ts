// Matrix products the threaded-wasm test runs on every backend (seeded inputs, so each process builds the same
// numbers): plain, transposed flags, fused bias + activations, batches with broadcasting, and a fused gradient.
import { tf } from "../../core/backend.js";

export interface CaseResult {
  name: string;
  shape: number[];
  data: Float32Array;
}

const u = (shape: number[], seed: number) => tf.randomUniform(shape, -1, 1, "float32", seed);

/** Runs every case and returns the outputs as plain arrays; leaves no tensors behind. */
export function runMatMulCases(): CaseResult[] {
  const out: CaseResult[] = [];
  const keep = (name: string, t: tf.Tensor) => {
    out.push({ name, shape: t.shape, data: t.dataSync() as Float32Array });
  };
  tf.tidy(() => {
    const a = u([96, 130], 1);
    const b = u([130, 150], 2);
    const aT = u([130, 96], 3);
    const bT = u([150, 130], 4);
    const bias = u([150], 5);
    keep("plain [96,130]x[130,150]", tf.matMul(a, b));
    keep("odd sizes [257,300]x[300,311]", tf.matMul(u([257, 300], 7), u([300, 311], 8)));
    keep("transposeA", tf.matMul(aT, b, true, false));
    keep("transposeB", tf.matMul(a, bT, false, true));
    keep("transposeA+B", tf.matMul(aT, bT, true, true));
    keep("fused bias+relu", tf.fused.matMul({ a, b, bias, activation: "relu" }));
    keep("fused bias+elu", tf.fused.matMul({ a, b, bias, activation: "elu" })); // wasm: rank-1 bias only
    keep("fused bias+relu6", tf.fused.matMul({ a, b, bias, activation: "relu6" }));
    keep("fused bias+sigmoid", tf.fused.matMul({ a, b, bias, activation: "sigmoid" }));
    keep("fused leakyrelu", tf.fused.matMul({ a, b, bias, activation: "leakyrelu", leakyreluAlpha: 0.1 }));
    keep("fused prelu", tf.fused.matMul({ a, b, activation: "prelu", preluActivationWeights: u([150], 9) }));
    keep("fused transposeB+bias+relu", tf.fused.matMul({ a, b: bT, transposeB: true, bias, activation: "relu" }));
    keep("fused 3-D [1,96,130]x[130,150]+bias", tf.fused.matMul({ a: a.reshape([1, 96, 130]), b: b.reshape([1, 130, 150]), bias }));
    keep("fused [3,40,130]x[130,150]+bias", tf.fused.matMul({ a: u([3, 40, 130], 19), b, bias, activation: "relu" }));
    keep("fused batched B [3,40,130]x[3,130,150]+bias+relu", tf.fused.matMul({ a: u([3, 40, 130], 20), b: u([3, 130, 150], 21), bias, activation: "relu" }));
    keep("fused transposeA+B batched+bias+prelu", tf.fused.matMul({ a: u([2, 130, 40], 22), b: u([2, 150, 130], 23), transposeA: true, transposeB: true, bias, activation: "prelu", preluActivationWeights: u([150], 24) }));
    keep("batch [3,40,50]x[3,50,30]", tf.matMul(u([3, 40, 50], 10), u([3, 50, 30], 11)));
    keep("broadcast [3,40,50]x[1,50,30]", tf.matMul(u([3, 40, 50], 12), u([1, 50, 30], 13)));
    keep("broadcast [2,3,40,50]x[50,30]", tf.matMul(u([2, 3, 40, 50], 14), u([50, 30], 15)));
    keep("attention [4,60,16]x[4,60,16]^T", tf.matMul(u([4, 60, 16], 16), u([4, 60, 16], 17), false, true));
    const g = tf.grads((x: tf.Tensor, w: tf.Tensor, c: tf.Tensor) =>
      tf.sum(tf.mul(tf.fused.matMul({ a: x as tf.Tensor2D, b: w as tf.Tensor2D, bias: c, activation: "relu" }), u([96, 150], 18))),
    )([a, b, bias]);
    g.forEach((t, i) => keep(`grad of fused matMul: ${["dA", "dB", "dBias"][i]}`, t));
  });
  return out;
}
