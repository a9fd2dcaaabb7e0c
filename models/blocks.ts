// Weight blocking for the single-threaded wasm GEMM (XNNPACK fully-connected, tfjs-backend-wasm 4.22).
// Without a thread pool XNNPACK sweeps the whole packed weight matrix for every few rows of the input, so a weight
// larger than L2 (1.25 MiB per core here) is streamed from L3 ~M/4 times and the GEMM runs at about half its rate
// (measured: [616,896]x[896,9728] 9 GFLOP/s plain vs 15 with 256-column blocks, same process). Splitting a Linear
// kernel once, at load, into column blocks of <= BLOCK_BYTES keeps each block cache-resident.
// The split copies rows in JS from one readback: tf.slice/tf.split on wasm copy the *whole* input per piece, and
// tf.gather is ~10x slower than a matMul of the same block, so neither can run per call.
import { tf } from "../core/backend.js";

/** Target size of one packed weight block (fits the 1.25 MiB L2 of one core with room for the input rows). */
const BLOCK_BYTES = 1 << 20;

/** Column-block width for a kernel with `rows` input rows: a multiple of 64 (one head), at least 64. */
export function blockWidth(rows: number): number {
  return Math.max(64, Math.floor(BLOCK_BYTES / 4 / rows / 64) * 64);
}

/** Widths of consecutive blocks covering `n` columns, each at most `width`. */
export function blockSizes(n: number, width: number): number[] {
  const sizes: number[] = [];
  for (let c = 0; c < n; c += width) sizes.push(Math.min(width, n - c));
  return sizes;
}

/**
 * Column blocks of a [K, N] matrix (or the matching pieces of a [N] bias) as new tensors; `w` is not disposed.
 * `sizes` must sum to N. Runs once per weight (load time): one readback, then one typed-array copy per row and block.
 */
export function splitColumns(w: tf.Tensor, sizes: number[]): tf.Tensor[] {
  const [K, N] = w.rank === 1 ? [1, w.shape[0]!] : [w.shape[0]!, w.shape[1]!];
  if (sizes.reduce((a, b) => a + b, 0) !== N) throw new RangeError(`splitColumns: sizes [${sizes}] do not cover ${N} columns`);
  const data = w.dataSync() as Float32Array;
  let c0 = 0;
  return sizes.map((s) => {
    const out = new Float32Array(K * s);
    for (let r = 0; r < K; r++) out.set(data.subarray(r * N + c0, r * N + c0 + s), r * s);
    c0 += s;
    return w.rank === 1 ? tf.tensor1d(out) : tf.tensor2d(out, [K, s]);
  });
}

/** Row blocks of a [K, N] matrix (contiguous ranges of rows) as new tensors; `w` is not disposed. */
export function splitRows(w: tf.Tensor2D, sizes: number[]): tf.Tensor2D[] {
  const [K, N] = w.shape;
  if (sizes.reduce((a, b) => a + b, 0) !== K) throw new RangeError(`splitRows: sizes [${sizes}] do not cover ${K} rows`);
  const data = w.dataSync() as Float32Array;
  let r0 = 0;
  return sizes.map((s) => {
    const out = data.slice(r0 * N, (r0 + s) * N);
    r0 += s;
    return tf.tensor2d(out, [s, N]);
  });
}

/**
 * Row blocks of a [N, K] matrix, each transposed to [K, s]: the column blocks of wᵀ, made without forming wᵀ (one
 * readback, then one block-sized transpose at a time); `w` is not disposed.
 */
export function splitRowsTransposed(w: tf.Tensor2D, sizes: number[]): tf.Tensor2D[] {
  const [N, K] = w.shape;
  if (sizes.reduce((a, b) => a + b, 0) !== N) throw new RangeError(`splitRowsTransposed: sizes [${sizes}] do not cover ${N} rows`);
  const data = w.dataSync() as Float32Array;
  let r0 = 0;
  return sizes.map((s) => {
    const rows = data.subarray(r0 * K, (r0 + s) * K);
    r0 += s;
    return tf.tidy(() => tf.transpose(tf.tensor2d(rows, [s, K]))); // [K, s]
  });
}

/**
 * Columns `ids` of a [K, N] matrix stored as column blocks (all `blocks[j]` [K, w] but the last, as blockSizes gives
 * them), returned as rows [n, K]: e.g. token embeddings read from the blocks of a tied embedᵀ. One gather per block
 * the ids touch (ids are grouped in JS), one concat, one gather back to the ids' order.
 */
export function gatherColumnBlocks(blocks: tf.Tensor2D[], ids: ArrayLike<number>, what = "gatherColumnBlocks: id"): tf.Tensor2D {
  const width = blocks[0]!.shape[1];
  const N = blocks.reduce((a, b) => a + b.shape[1], 0);
  const groups = new Map<number, { local: number[]; at: number[] }>();
  for (let i = 0; i < ids.length; i++) {
    const id = ids[i]!;
    if (!Number.isInteger(id) || id < 0 || id >= N) throw new RangeError(`${what} ${id} at position ${i} is outside 0..${N - 1}`);
    const j = Math.floor(id / width);
    const g = groups.get(j) ?? { local: [], at: [] };
    g.local.push(id - j * width);
    g.at.push(i);
    groups.set(j, g);
  }
  return tf.tidy(() => {
    const parts: tf.Tensor2D[] = [];
    const order: number[] = [];
    for (const [j, g] of groups) {
      parts.push(tf.gather(blocks[j]!, tf.tensor1d(g.local, "int32"), 1)); // [K, n_j]
      order.push(...g.at);
    }
    const cols = parts.length === 1 ? parts[0]! : tf.concat(parts, 1); // [K, n] grouped by block
    const back = new Int32Array(order.length);
    order.forEach((pos, k) => (back[pos] = k));
    const inOrder = groups.size === 1 && order.every((p, k) => p === k) ? cols : tf.gather(cols, tf.tensor1d(back, "int32"), 1);
    return tf.transpose(inOrder) as tf.Tensor2D; // [n, K]
  });
}
