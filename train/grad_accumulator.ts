// Sums named gradients over the micro-batches of one optimizer step, holding one tensor per name (no growth).
import { tf } from "../core/backend.js";
import { checkSameKeysAndShapes } from "./optimizer.js";

type Named = Record<string, tf.Tensor>;

/**
 * Running sum of gradients. With the summed loss of train/loss.ts, call `take(1 / totalSupervisedTokens)` to get
 * the gradient of the token-mean loss over the whole accumulated batch.
 * The sums are kept out of any tf.tidy the caller runs (tf.keep) and are released by take/reset/dispose.
 */
export class GradAccumulator {
  private sums: Named | undefined;
  private n = 0;

  /** Micro-batches added since the last take/reset. */
  get microBatches(): number {
    return this.n;
  }

  /** Adds `grads` to the running sum. The inputs are read, not disposed; keys and shapes must match earlier adds. */
  add(grads: Named): void {
    const sums = this.sums;
    if (!sums) {
      this.sums = Object.fromEntries(Object.entries(grads).map(([k, g]) => [k, tf.keep(tf.clone(g))]));
    } else {
      checkSameKeysAndShapes("GradAccumulator.add: gradient", sums, grads);
      for (const [k, g] of Object.entries(grads)) {
        const next = tf.keep(tf.add(sums[k]!, g));
        sums[k]!.dispose();
        sums[k] = next;
      }
    }
    this.n++;
  }

  /**
   * Returns sum * scale as new tensors (the caller owns them; inside a tidy they belong to it) and resets.
   * @throws Error when nothing was added.
   */
  take(scale = 1): Named {
    const sums = this.sums;
    if (!sums) throw new Error("GradAccumulator.take: no gradients were added");
    const out: Named = {};
    for (const [k, s] of Object.entries(sums)) out[k] = tf.mul(s, scale);
    this.reset();
    return out;
  }

  /** Drops the running sum. */
  reset(): void {
    for (const s of Object.values(this.sums ?? {})) s.dispose();
    this.sums = undefined;
    this.n = 0;
  }

  dispose(): void {
    this.reset();
  }
}
