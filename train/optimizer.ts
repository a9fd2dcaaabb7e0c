// AdamW over named variables, the torch.optim.AdamW recurrence (decoupled weight decay, bias correction, eps added
// after the square root of the corrected second moment); state as named tensors for checkpoints.
//
//   p <- p * (1 - lr * wd)                                   decay first, on the old parameter
//   m <- m + (1 - b1) * (g - m);   v <- b2 * v + (1 - b2) * g^2
//   p <- p - (lr / (1 - b1^t)) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)
import { tf } from "../core/backend.js";

export interface AdamWOptions {
  /** (beta1, beta2); default (0.9, 0.999) as PyTorch. */
  betas?: [number, number];
  /** Default 1e-8 as PyTorch. */
  eps?: number;
  /** Decoupled weight decay; default 0.01 as torch.optim.AdamW (LLaVA's recipes pass 0). */
  weightDecay?: number;
}

export interface AdamWState {
  /** Number of updates applied so far (PyTorch's state["step"]). */
  step: number;
  /** `<var>.exp_avg` and `<var>.exp_avg_sq` for every variable, float32, the variable's shape. */
  tensors: Record<string, tf.Tensor>;
}

interface Moments {
  expAvg: tf.Variable;
  expAvgSq: tf.Variable;
}

/** AdamW on a fixed set of named variables. Moments live in non-trainable Variables updated in place. */
export class AdamW {
  readonly beta1: number;
  readonly beta2: number;
  readonly eps: number;
  readonly weightDecay: number;
  private t = 0;
  private readonly moments = new Map<string, Moments>();

  constructor(private readonly vars: Record<string, tf.Variable>, opts: AdamWOptions = {}) {
    [this.beta1, this.beta2] = opts.betas ?? [0.9, 0.999];
    this.eps = opts.eps ?? 1e-8;
    this.weightDecay = opts.weightDecay ?? 0.01;
    const bad: string[] = [];
    for (const [k, b] of [["betas[0]", this.beta1], ["betas[1]", this.beta2]] as const) {
      if (!(b >= 0 && b < 1)) bad.push(`${k}: expected a number in [0, 1), got ${b}`);
    }
    if (!(this.eps >= 0)) bad.push(`eps: expected a number >= 0, got ${this.eps}`);
    if (!(this.weightDecay >= 0)) bad.push(`weightDecay: expected a number >= 0, got ${this.weightDecay}`);
    if (Object.keys(vars).length === 0) bad.push("no variables to optimize");
    if (bad.length) throw new Error(`AdamW: ${bad.join("; ")}`);
    for (const [name, v] of Object.entries(vars)) {
      if (v.dtype !== "float32") throw new Error(`AdamW: variable "${name}" is ${v.dtype}, expected float32`);
      this.moments.set(name, { expAvg: zerosVariable(v), expAvgSq: zerosVariable(v) });
    }
  }

  /** Updates applied so far. */
  get stepCount(): number {
    return this.t;
  }

  /**
   * One update with learning rate `lr`. `grads` must hold exactly one tensor per variable, same shape; they are
   * read, not disposed. Leaves tf.memory().numTensors unchanged.
   * @throws Error naming the variable when a gradient is missing, unexpected or of the wrong shape.
   */
  step(grads: Record<string, tf.Tensor>, lr: number): void {
    if (this.moments.size === 0) throw new Error("AdamW.step: called after dispose()");
    if (!(Number.isFinite(lr) && lr >= 0)) throw new Error(`AdamW.step: lr must be a finite number >= 0, got ${lr}`);
    checkSameKeysAndShapes("AdamW.step: gradient", this.vars, grads);
    const t = this.t + 1;
    const { beta1: b1, beta2: b2, eps, weightDecay: wd } = this;
    const stepSize = lr / (1 - b1 ** t);
    const bc2Sqrt = Math.sqrt(1 - b2 ** t);
    tf.tidy(() => {
      for (const [name, p] of Object.entries(this.vars)) {
        const g = grads[name]!;
        const { expAvg, expAvgSq } = this.moments.get(name)!;
        const decayed = wd !== 0 ? tf.mul(p, 1 - lr * wd) : p;
        const m = tf.add(expAvg, tf.mul(tf.sub(g, expAvg), 1 - b1)); // torch: exp_avg.lerp_(grad, 1 - beta1)
        const v = tf.add(tf.mul(expAvgSq, b2), tf.mul(tf.square(g), 1 - b2));
        const denom = tf.add(tf.div(tf.sqrt(v), bc2Sqrt), eps);
        p.assign(tf.sub(decayed, tf.mul(tf.div(m, denom), stepSize)));
        expAvg.assign(m);
        expAvgSq.assign(v);
      }
    });
    this.t = t;
  }

  /** The step count and copies of the moments (the caller owns and disposes the tensors). */
  state(): AdamWState {
    const tensors: Record<string, tf.Tensor> = {};
    for (const [name, { expAvg, expAvgSq }] of this.moments) {
      tensors[`${name}.exp_avg`] = tf.clone(expAvg);
      tensors[`${name}.exp_avg_sq`] = tf.clone(expAvgSq);
    }
    return { step: this.t, tensors };
  }

  /**
   * Restores a state from state() (e.g. read back from optimizer.safetensors). The tensors are copied; the caller
   * still owns and disposes them.
   * @throws Error naming the key when one is missing, unexpected, or has the wrong shape or dtype.
   */
  loadState(s: AdamWState): void {
    if (!(Number.isSafeInteger(s.step) && s.step >= 0)) throw new Error(`AdamW.loadState: step must be an integer >= 0, got ${s.step}`);
    const want: Record<string, tf.Variable> = {};
    for (const [name, { expAvg, expAvgSq }] of this.moments) {
      want[`${name}.exp_avg`] = expAvg;
      want[`${name}.exp_avg_sq`] = expAvgSq;
    }
    checkSameKeysAndShapes("AdamW.loadState: tensor", want, s.tensors);
    for (const [key, v] of Object.entries(want)) {
      const x = s.tensors[key]!;
      if (x.dtype !== "float32") throw new Error(`AdamW.loadState: tensor "${key}" is ${x.dtype}, expected float32`);
      v.assign(x);
    }
    this.t = s.step;
  }

  /** Disposes the moments (not the model variables). */
  dispose(): void {
    for (const { expAvg, expAvgSq } of this.moments.values()) {
      expAvg.dispose();
      expAvgSq.dispose();
    }
    this.moments.clear();
  }

}

/** A non-trainable Variable of zeros shaped like `v` (tidy drops the initial value; the Variable stays). */
function zerosVariable(v: tf.Tensor): tf.Variable {
  return tf.tidy(() => tf.variable(tf.zerosLike(v), false));
}

/** Throws when `got` lacks a key of `want`, has an extra key, or a shape differs; names the key. */
export function checkSameKeysAndShapes(what: string, want: Record<string, tf.Tensor>, got: Record<string, tf.Tensor>): void {
  const problems: string[] = [];
  for (const [k, w] of Object.entries(want)) {
    const g = got[k];
    if (!g) problems.push(`"${k}" is missing`);
    else if (g.shape.join(",") !== w.shape.join(",")) problems.push(`"${k}" has shape [${g.shape}], expected [${w.shape}]`);
  }
  for (const k of Object.keys(got)) if (!(k in want)) problems.push(`"${k}" is unexpected`);
  if (problems.length) throw new Error(`${what} ${problems.join("; ")}`);
}
