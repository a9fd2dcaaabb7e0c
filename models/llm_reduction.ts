// Decoder-side bookkeeping of in-LLM token reduction (the interface is reduce/in_llm.ts): which prefill positions each
// row still holds and which of them are visual, the query rows an attention capture reads, and the flat indices
// that apply a decision (hidden states, RoPE cos/sin of the original positions and the mask are gathered with them,
// so kept tokens keep their original position ids and order, and the causal mask follows the kept positions).
import { tf } from "../core/backend.js";
import type { AttentionQueries, DecisionInput, DecisionPoint, InLlmReduction, ReductionTrace } from "../reduce/in_llm.js";

/** What a layer captured for the decision entering the next layer (tensors live in the forward's tidy). */
export interface Captured {
  scores?: tf.Tensor2D; // [B, n] attention received by the alive visual tokens
  sources?: tf.Tensor3D; // [B, n, C] layer input at the alive visual tokens
  targets?: tf.Tensor3D; // [B, n, C] post-attention RMSNorm output at the alive visual tokens
}

export class ReductionState {
  private readonly points = new Map<number, DecisionPoint>();
  /** [b] prefill positions the current sequence holds, ascending. */
  private seq: number[][];
  /** [b] original visual indices still alive, ascending. */
  private alive: number[][];
  private captured: Captured | undefined;
  readonly N: number;
  private readonly T0: number;
  readonly trace: ReductionTrace;

  /**
   * @param mask [B·T] the prefill mask (1 = real, 0 = left padding), row-major.
   * @throws RangeError when visualPositions do not fit the batch; ConfigError when the reducer does not fit the model.
   */
  constructor(
    private readonly r: InLlmReduction,
    layers: number,
    private readonly B: number,
    T: number,
    private readonly mask: ArrayLike<number>,
  ) {
    const name = r.reducer.name;
    this.T0 = T;
    const vp = r.visualPositions;
    if (vp.length !== B) throw new RangeError(`llm forward: reduction "${name}": visualPositions has ${vp.length} rows but the input has ${B}`);
    this.N = vp[0]!.length;
    vp.forEach((row, b) => {
      if (row.length !== this.N) throw new RangeError(`llm forward: reduction "${name}": row ${b} has ${row.length} visual tokens, row 0 has ${this.N} (budgets are per image: every row needs the same count)`);
      row.forEach((p, i) => {
        if (!Number.isInteger(p) || p < 0 || p >= T || (i > 0 && p <= row[i - 1]!)) {
          throw new RangeError(`llm forward: reduction "${name}": row ${b}, visual token ${i}: position ${p} is not ascending within 0..${T - 1}`);
        }
      });
    });
    let prev = 0;
    for (const p of r.reducer.decisions(layers, this.N)) {
      if (!Number.isInteger(p.layer) || p.layer < 1 || p.layer >= layers || p.layer <= prev) {
        throw new RangeError(`llm forward: reduction "${name}": decision layers must ascend within 1..${layers - 1}, got ${p.layer}`);
      }
      this.points.set(p.layer, p);
      prev = p.layer;
    }
    this.seq = Array.from({ length: B }, () => Array.from({ length: T }, (_, t) => t));
    this.alive = Array.from({ length: B }, () => Array.from({ length: this.N }, (_, i) => i));
    this.trace = { visualPerLayer: new Array<number>(layers).fill(this.N), decisions: [], keptPositions: this.seq };
  }

  /** The decision point whose inputs layer l must capture (the decision entering l + 1), if any. */
  captureFor(l: number): DecisionPoint | undefined {
    return this.points.get(l + 1);
  }

  /** Current sequence length (equal in every row). */
  get length(): number {
    return this.seq[0]!.length;
  }

  /**
   * The query rows an attention capture reads: rows start..T-1 of the current sequence and their weights [B, Tq]
   * (1 for an asked query, else 0). "textAfterImage": real tokens after the row's last alive visual token (the last
   * token when there is none).
   */
  queries(kind: AttentionQueries): { start: number; weights: tf.Tensor2D } {
    const T = this.length;
    if (kind === "last") return { start: T - 1, weights: tf.ones([this.B, 1]) };
    const vp = this.r.visualPositions;
    const lastVisual = this.seq.map((seq, b) => {
      const a = this.alive[b]!;
      if (a.length === 0) return -1;
      return seq.indexOf(vp[b]![a[a.length - 1]!]!);
    });
    const start = Math.min(...lastVisual.map((v) => Math.min(v + 1, T - 1)));
    const w: number[] = [];
    this.seq.forEach((seq, b) => {
      const row: number[] = [];
      for (let t = start; t < T; t++) row.push(t > lastVisual[b]! && this.mask[b * this.T0 + seq[t]!]! !== 0 ? 1 : 0);
      if (!row.some((x) => x)) row[row.length - 1] = 1;
      w.push(...row);
    });
    return { start, weights: tf.tensor2d(w, [this.B, T - start]) };
  }

  /** [B·n] int32: flat indices (b·T + t) of the alive visual tokens in the current [B·T] sequence. */
  visualIndex(): tf.Tensor1D {
    const T = this.length;
    const vp = this.r.visualPositions;
    const flat: number[] = [];
    this.seq.forEach((seq, b) => {
      const at = new Map(seq.map((p, t) => [p, t]));
      for (const v of this.alive[b]!) flat.push(b * T + at.get(vp[b]![v]!)!);
    });
    return tf.tensor1d(flat, "int32");
  }

  store(c: Captured): void {
    this.captured = c;
  }

  /**
   * Takes the decision entering layer l (when there is one): asks the reducer, checks its answer, and returns the flat
   * indices [B·T'] of the positions to keep (undefined when nothing is dropped). Records visual counts per layer.
   */
  decide(l: number): { index: tf.Tensor1D; length: number } | undefined {
    const point = this.points.get(l);
    if (!point) {
      this.trace.visualPerLayer[l] = this.alive[0]!.length;
      return undefined;
    }
    const name = this.r.reducer.name;
    const c = this.captured ?? {};
    this.captured = undefined;
    const n = this.alive[0]!.length;
    const input: DecisionInput = { layer: l, visualTokens: this.N, alive: this.alive.map((a) => a.slice()) };
    if (c.scores) {
      const all = c.scores.dataSync() as Float32Array;
      input.scores = this.alive.map((_, b) => all.slice(b * n, (b + 1) * n));
    }
    if (c.sources) input.sources = c.sources;
    if (c.targets) input.targets = c.targets;
    const kept = this.r.reducer.decide(input).map((k) => k.slice().sort((a, b) => a - b));
    if (kept.length !== this.B) throw new Error(`llm forward: reduction "${name}", layer ${l}: decided ${kept.length} rows for ${this.B}`);
    kept.forEach((k, b) => {
      const alive = new Set(this.alive[b]!);
      if (k.length !== kept[0]!.length) throw new Error(`llm forward: reduction "${name}", layer ${l}: row ${b} keeps ${k.length} visual tokens, row 0 keeps ${kept[0]!.length} (every row must keep the same count)`);
      k.forEach((v, i) => {
        if (!alive.has(v) || (i > 0 && v === k[i - 1])) throw new Error(`llm forward: reduction "${name}", layer ${l}, row ${b}: visual token ${v} is not alive or is kept twice`);
      });
    });
    this.trace.decisions.push({ layer: l, kept, ...(input.scores ? { scores: input.scores } : {}) });
    this.trace.visualPerLayer[l] = kept[0]!.length;
    if (kept[0]!.length === n) return undefined;
    const T = this.length;
    const vp = this.r.visualPositions;
    const flat: number[] = [];
    this.seq = this.seq.map((seq, b) => {
      const keep = new Set(kept[b]!);
      const dropped = new Set(this.alive[b]!.filter((v) => !keep.has(v)).map((v) => vp[b]![v]!));
      const next: number[] = [];
      seq.forEach((p, t) => {
        if (dropped.has(p)) return;
        next.push(p);
        flat.push(b * T + t);
      });
      return next;
    });
    this.alive = kept;
    this.trace.keptPositions = this.seq;
    return { index: tf.tensor1d(flat, "int32"), length: this.seq[0]!.length };
  }
}

/** Rows of the sequence axis kept: [B, T, ...] (sequence axis `axis`) gathered at flat indices b·T + t -> [B, T', ...]. */
export function gatherSequence<R extends tf.Tensor>(t: R, index: tf.Tensor1D, B: number, length: number, axis = 1): R {
  const shape = t.shape.slice();
  const T = shape[axis]!;
  // Move to [B·T, rest] (the axes before `axis` other than B are size 1 here: [B, 1, T, D]).
  const rest = shape.slice(axis + 1);
  const flat = tf.reshape(t, [B * T, ...rest]);
  const picked = tf.gather(flat, index, 0);
  shape[axis] = length;
  return tf.reshape(picked, shape) as R;
}
