// Shifted, masked next-token cross-entropy (LLaVA / HF LlamaForCausalLM): logits[:, t] predict labels[:, t + 1];
// positions labelled IGNORE_INDEX (-100) carry no loss. Returns the SUM and the count of supervised tokens so the
// caller divides by the count over every micro-batch of the accumulated batch.
//
// Only supervised positions enter the softmax: labels are read once on the host (they are small), their
// contiguous runs are sliced out of the logits and concatenated to [M, V]. Slice/concat/oneHot/logSoftmax have
// gradients on every tfjs backend (gather's gradient needs UnsortedSegmentSum, which the wasm backend lacks).
import { tf } from "../core/backend.js";
import { DataError } from "../core/errors.js";

export const IGNORE_INDEX = -100;

export interface MaskedCrossEntropy {
  /** Sum over supervised positions of -log softmax(logits)[label]; differentiable w.r.t. logits. */
  sum: tf.Scalar;
  /** Number of supervised positions (labels[:, 1:] != -100). */
  count: number;
}

/** One contiguous run of supervised (shifted) positions in row b: logits[b, t0 .. t0 + len). */
interface Run {
  b: number;
  t0: number;
  len: number;
}

/**
 * Summed shifted cross-entropy over answer tokens.
 * @param logits [B, T, V] float32
 * @param labels [B, T] int32, IGNORE_INDEX (-100) where no loss is taken
 * @returns `{sum, count}`; with no supervised token, sum is a zero still connected to logits (so gradients are
 *   zeros rather than an error) and count is 0: the caller must not divide by it.
 * @throws DataError naming the row and position of a label outside [0, V) other than -100; Error on shape mismatch.
 */
export function maskedCrossEntropySum(logits: tf.Tensor3D, labels: tf.Tensor2D): MaskedCrossEntropy {
  const [B, T, V] = logits.shape;
  if (labels.rank !== 2 || labels.shape[0] !== B || labels.shape[1] !== T) {
    throw new Error(`maskedCrossEntropySum: labels shape [${labels.shape}] does not match logits [${logits.shape}] (want [${B}, ${T}])`);
  }
  if (labels.dtype !== "int32") throw new Error(`maskedCrossEntropySum: labels must be int32, got ${labels.dtype}`);
  const { runs, targets } = supervisedRuns(labels.dataSync() as Int32Array, B, T, V);
  const sum = tf.tidy(() => {
    if (targets.length === 0) return connectedZero(logits);
    const rows = runs.map((r) => tf.reshape(tf.slice(logits, [r.b, r.t0, 0], [1, r.len, V]), [r.len, V]));
    const picked = rows.length === 1 ? rows[0]! : tf.concat(rows, 0); // [M, V]
    const logp = tf.logSoftmax(picked, -1); // [M, V]
    // oneHot as int32 then cast: the wasm OneHot kernel ignores the dtype argument (tfjs 4.22).
    const target = tf.cast(tf.oneHot(tf.tensor1d(targets, "int32"), V), "float32"); // [M, V]
    return tf.neg(tf.sum(tf.mul(logp, target))) as tf.Scalar;
  });
  return { sum, count: targets.length };
}

/**
 * 0 that still depends on logits (gradient zeros, even where a logit is not finite), so tf.grad / variableGrads
 * work on a micro-batch without answer tokens. (Summing an empty slice reads garbage on the wasm backend.)
 */
function connectedZero(logits: tf.Tensor3D): tf.Scalar {
  if (logits.size === 0) return tf.scalar(0);
  const first = tf.slice(logits, [0, 0, 0], [1, 1, 1]);
  return tf.sum(tf.where(tf.zeros([1, 1, 1], "bool"), first, tf.zerosLike(first))) as tf.Scalar;
}

/** Host-side scan of labels[:, 1:]: contiguous supervised runs (in logits positions) and their target ids. */
function supervisedRuns(labels: Int32Array, B: number, T: number, V: number): { runs: Run[]; targets: Int32Array } {
  const runs: Run[] = [];
  const targets: number[] = [];
  for (let b = 0; b < B; b++) {
    let open: Run | undefined;
    for (let t = 0; t + 1 < T; t++) {
      const y = labels[b * T + t + 1]!;
      if (y === IGNORE_INDEX) {
        open = undefined;
        continue;
      }
      if (y < 0 || y >= V) {
        throw new DataError(`label ${y} at position ${t + 1} is outside the vocabulary [0, ${V}) and is not ${IGNORE_INDEX}`, { row: b, column: "labels" });
      }
      targets.push(y);
      if (open) open.len++;
      else runs.push((open = { b, t0: t, len: 1 }));
    }
  }
  return { runs, targets: Int32Array.from(targets) };
}
