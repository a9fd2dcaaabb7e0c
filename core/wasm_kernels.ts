// A faster BatchMatMul on the wasm backend for transposed operands. tfjs-backend-wasm 4.22 runs BatchMatMul with
// transposeA/transposeB on a slow path (measured here: 194 ms vs 14 ms for [1872,688]x[688,128] with an explicit
// transpose first), and every matMul gradient uses those flags, so backward passes were about 2x slower than needed.
// This re-registers the kernel (tfjs's public kernel registry) to transpose the flagged operand explicitly and run the
// plain kernel: the same numbers, on every caller, with no change to model code.
import * as tf from "@tensorflow/tfjs";

/** What a kernel sees of a tensor (tfjs's TensorInfo, as the kernel registry hands it over). */
export interface TensorInfoLike {
  dataId: object;
  shape: number[];
  dtype: string;
}

/** The Transpose perm that swaps the last two axes of `x`. */
export function swapLastTwo(x: TensorInfoLike): number[] {
  const r = x.shape.length;
  return x.shape.map((_, i) => (i < r - 2 ? i : i === r - 2 ? r - 1 : r - 2));
}

const replaced = new Set<string>();

/**
 * Re-registers the wasm kernel `name` (tfjs's public kernel registry) with `wrap(original)`: once per process, and a
 * no-op where wasm lacks the kernel or any of `needs`.
 */
export function replaceWasmKernel(name: string, wrap: (orig: tf.KernelConfig) => tf.KernelFunc, needs: readonly string[] = []): void {
  const orig = tf.getKernel(name, "wasm");
  if (replaced.has(name) || !orig || needs.some((n) => !tf.getKernel(n, "wasm"))) return;
  replaced.add(name);
  const kernelFunc = wrap(orig);
  tf.unregisterKernel(name, "wasm");
  tf.registerKernel({ ...orig, kernelFunc });
}

/** Installs the transposed-operand fast path for BatchMatMul on wasm (idempotent). */
export function installWasmMatMulFastPath(): void {
  replaceWasmKernel("BatchMatMul", transposeFirst, ["Transpose"]);
}

function transposeFirst(orig: tf.KernelConfig): tf.KernelFunc {
  const transpose = tf.getKernel("Transpose", "wasm")!;
  return (args) => {
    const { inputs, backend, attrs } = args;
    const { transposeA, transposeB } = attrs as unknown as { transposeA: boolean; transposeB: boolean };
    if (!transposeA && !transposeB) return orig.kernelFunc(args);
    const temps: TensorInfoLike[] = [];
    const flip = (x: TensorInfoLike): TensorInfoLike => {
      const t = transpose.kernelFunc({ inputs: { x } as never, backend, attrs: { perm: swapLastTwo(x) } as never }) as TensorInfoLike;
      temps.push(t);
      return t;
    };
    const a = inputs.a as TensorInfoLike;
    const b = inputs.b as TensorInfoLike;
    try {
      return orig.kernelFunc({ inputs: { a: transposeA ? flip(a) : a, b: transposeB ? flip(b) : b } as never, backend, attrs: { ...attrs, transposeA: false, transposeB: false } as never });
    } finally {
      for (const t of temps) (backend as unknown as { disposeData(id: object): void }).disposeData(t.dataId);
    }
  };
}

/**
 * A zero-copy Identity on wasm, as the cpu and webgl backends have. tfjs-backend-wasm 4.22 copies the whole tensor,
 * and the engine runs Identity (tf.clone) on every tensor it saves for a gradient while a tape records: about 850
 * copies per decoder-layer training micro-batch; sharing made the bench's training steps ~18% faster. Tensors are
 * immutable (a Variable's assign swaps its dataId), so sharing the data with a reference count, as the wasm Reshape
 * kernel does, is safe.
 */
export function installWasmZeroCopyIdentity(): void {
  replaceWasmKernel("Identity", (orig) => (args) => {
    const x = args.inputs.x as TensorInfoLike;
    if (x.dtype === "string") return orig.kernelFunc(args);
    (args.backend as unknown as { incRef(id: object): void }).incRef(x.dataId);
    return { dataId: x.dataId, shape: x.shape, dtype: x.dtype } as tf.TensorInfo;
  });
}
