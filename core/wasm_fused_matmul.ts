// A correct (and faster) _FusedMatMul on the wasm backend. tfjs-backend-wasm 4.22 runs the fused kernel on XNNPACK only
// for 2-D products without transposes (batch 1); everything else goes to slow_batch_matmul (src/cc/batch_mat_mul_impl.cc),
// which adds the bias at flat index min(i * N + j, len - 1) instead of j, once per 48-wide block of K, and clamps
// (relu / relu6) the partial sums: e.g. fused.matMul({a: [20,130], b: [30,130], transposeB: true, bias: [30]}) differs
// from the cpu backend by ~2. This re-registers the kernel (tfjs's public kernel registry) to transpose flagged operands
// explicitly, fold A's batch dims into rows when B has none (one XNNPACK product, as for 2-D), and, for a batched B,
// run the product unfused and then the bias and activation kernels.
import * as tf from "@tensorflow/tfjs";
import { replaceWasmKernel, swapLastTwo, type TensorInfoLike } from "./wasm_kernels.js";

interface FusedAttrs {
  transposeA: boolean;
  transposeB: boolean;
  activation: string;
  leakyreluAlpha?: number;
}

const prod = (xs: readonly number[]) => xs.reduce((p, d) => p * d, 1);

/** Installs the fixed _FusedMatMul on wasm (idempotent; a no-op where the wasm kernels are not registered). */
export function installWasmFusedMatMulFix(): void {
  replaceWasmKernel("_FusedMatMul", fixedFusedMatMul, ["Transpose", "Reshape", "Add", "Relu", "Relu6", "Elu", "Sigmoid", "LeakyRelu", "Prelu"]);
}

function fixedFusedMatMul(orig: tf.KernelConfig): tf.KernelFunc {
  const kernelFunc = (args: Parameters<tf.KernelFunc>[0]): ReturnType<tf.KernelFunc> | TensorInfoLike => {
    const { inputs, backend } = args;
    const attrs = args.attrs as unknown as FusedAttrs;
    const disposeData = (t: TensorInfoLike) => (backend as unknown as { disposeData(id: object): void }).disposeData(t.dataId);
    const call = (name: string, ins: Record<string, TensorInfoLike | undefined>, at: object = {}): TensorInfoLike =>
      (name === "_FusedMatMul" ? orig : tf.getKernel(name, "wasm")!).kernelFunc({ inputs: ins as never, backend, attrs: at as never }) as TensorInfoLike;
    const temps: TensorInfoLike[] = [];
    const temp = (t: TensorInfoLike) => (temps.push(t), t);
    if (!attrs.transposeA && !attrs.transposeB && prod((inputs.a as TensorInfoLike).shape.slice(0, -2)) === 1 && prod((inputs.b as TensorInfoLike).shape.slice(0, -2)) === 1) {
      return orig.kernelFunc(args); // already XNNPACK's path
    }
    try {
      let a = inputs.a as TensorInfoLike;
      let b = inputs.b as TensorInfoLike;
      if (attrs.transposeA) a = temp(call("Transpose", { x: a }, { perm: swapLastTwo(a) }));
      if (attrs.transposeB) b = temp(call("Transpose", { x: b }, { perm: swapLastTwo(b) }));
      const m = a.shape[a.shape.length - 2]!;
      const kk = a.shape[a.shape.length - 1]!;
      const n = b.shape[b.shape.length - 1]!;
      const outer = tf.broadcast_util.assertAndGetBroadcastShape(a.shape.slice(0, -2), b.shape.slice(0, -2));
      const plain = { ...attrs, transposeA: false, transposeB: false };
      const { bias, preluActivationWeights } = inputs as Record<string, TensorInfoLike | undefined>;
      if (prod(b.shape.slice(0, -2)) === 1) {
        // [..., M, K] x [K, N]: A's rows are contiguous, so this is one [rows, K] x [K, N] product on XNNPACK
        const a2 = temp(call("Reshape", { x: a }, { shape: [1, prod(a.shape.slice(0, -2)) * m, kk] }));
        const b2 = temp(call("Reshape", { x: b }, { shape: [1, kk, n] }));
        const out = temp(call("_FusedMatMul", { a: a2, b: b2, bias, preluActivationWeights }, plain));
        return call("Reshape", { x: out }, { shape: [...outer, m, n] });
      }
      // batched B: the product alone (linear, no bias) is right on the slow path; bias and activation follow
      let y = call("_FusedMatMul", { a, b }, { ...plain, activation: "linear" });
      const then = (name: string, ins: Record<string, TensorInfoLike | undefined>, at: object = {}) => {
        temps.push(y);
        y = call(name, ins, at);
      };
      if (bias) then("Add", { a: y, b: bias });
      const act = attrs.activation;
      if (act === "relu") then("Relu", { x: y });
      else if (act === "relu6") then("Relu6", { x: y });
      else if (act === "elu") then("Elu", { x: y });
      else if (act === "sigmoid") then("Sigmoid", { x: y });
      else if (act === "leakyrelu") then("LeakyRelu", { x: y }, { alpha: attrs.leakyreluAlpha ?? 0.2 });
      else if (act === "prelu") then("Prelu", { x: y, alpha: preluActivationWeights });
      else if (act !== "linear") throw new Error(`_FusedMatMul (wasm): activation "${act}" is not supported`);
      return y;
    } finally {
      for (const t of temps) disposeData(t);
    }
  };
  return kernelFunc as tf.KernelFunc;
}
