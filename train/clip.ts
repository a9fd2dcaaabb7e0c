// Gradient checks before an update: global L2 norm, clipping as torch.nn.utils.clip_grad_norm_, and the
// all-finite guard (a NaN/Inf step is skipped by the caller, not applied).
import { tf } from "../core/backend.js";

type Named = Record<string, tf.Tensor>;

/** sqrt(sum over all tensors of sum(g^2)), a scalar tensor (the caller owns it). */
export function globalNorm(grads: Named | tf.Tensor[]): tf.Scalar {
  const list = Array.isArray(grads) ? grads : Object.values(grads);
  if (list.length === 0) return tf.scalar(0);
  return tf.tidy(() => tf.sqrt(tf.addN(list.map((g) => tf.sum(tf.square(g))))) as tf.Scalar);
}

export interface ClipResult {
  /** New tensors, scaled by `scale` (the caller owns them; the inputs are left alone). */
  grads: Named;
  /** Global norm before clipping (NaN or Infinity when a gradient is not finite). */
  norm: number;
  /** The factor applied: min(1, maxNorm / (norm + 1e-6)); 1 when the norm is not finite. */
  scale: number;
}

/**
 * Clips by global norm like torch.nn.utils.clip_grad_norm_(max_norm): coef = maxNorm / (norm + 1e-6), applied when
 * below 1. Reads the norm back to the host (one sync). A non-finite norm leaves the gradients unscaled (torch would
 * turn them all into NaN); check `allFinite` or `Number.isFinite(norm)` and skip the update.
 * @param maxNorm > 0; Infinity only measures the norm.
 */
export function clipGradNorm(grads: Named, maxNorm: number): ClipResult {
  if (!(maxNorm > 0)) throw new Error(`clipGradNorm: maxNorm must be > 0, got ${maxNorm}`);
  const normT = globalNorm(grads);
  const norm = normT.dataSync()[0]!;
  normT.dispose();
  const coef = maxNorm / (norm + 1e-6);
  const scale = Number.isFinite(norm) && coef < 1 ? coef : 1;
  const out: Named = {};
  for (const [k, g] of Object.entries(grads)) out[k] = scale < 1 ? tf.mul(g, scale) : tf.clone(g);
  return { grads: out, norm, scale };
}

/** True when every element of every tensor is finite (no NaN, no ±Infinity). One host sync. */
export function allFinite(tensors: Named | tf.Tensor[]): boolean {
  const list = Array.isArray(tensors) ? tensors : Object.values(tensors);
  if (list.length === 0) return true;
  const bad = tf.tidy(() => tf.addN(list.map((t) => tf.sum(tf.cast(tf.logicalNot(tf.isFinite(t)), "int32")))));
  const n = bad.dataSync()[0]!;
  bad.dispose();
  return n === 0;
}
