// Sample order over a shard set: which (shard, row) comes at each position of each epoch, for which worker.
//
// Rows are numbered globally (shard 0's rows, then shard 1's, ...). Each epoch has an order over all rows, derived
// from (seed, epoch) alone with core/rng.ts, so the same seed and epoch give the same order on any machine:
// - "permutation": a Fisher-Yates permutation of all rows (a Uint32Array, 4 bytes a row, read by random access);
// - "buffer": rows streamed shard by shard (shard order shuffled per epoch) through a seeded shuffle buffer of
//   `bufferSize` rows (as tf.data / webdataset do): sequential reads, memory bounded by the buffer, weaker mixing;
// - "none": the rows in order (feature precompute, eval).
// "auto" picks "permutation" up to MAX_PERMUTATION_ROWS rows (a 64 MiB index) and "buffer" above.
//
// `--shard i/N` splits one epoch order between N independent workers: worker i takes positions p with p % N == i,
// so the subsets are disjoint, their union is every row, and each worker knows its part without talking to others.
//
// A cursor {epoch, position, seed, shard?} is the next position of the epoch order to look at; it is plain JSON.
// The buffer order is resumed by replaying its index-level state (integers only, no data) up to `position`.
import { createRng, type Rng } from "../core/rng.js";

export type ShuffleMode = "permutation" | "buffer" | "none";

/** Above this many rows, "auto" uses the shuffle buffer instead of a full permutation (16.8M rows = 64 MiB). */
export const MAX_PERMUTATION_ROWS = 1 << 24;
/** Default shuffle buffer size in rows (rows are held decoded-from-Arrow, image bytes included). */
export const DEFAULT_BUFFER_SIZE = 1000;

/** Worker `index` of `count` (0 <= index < count). */
export interface ShardSpec {
  index: number;
  count: number;
}

/** Where a sequence of epochs stands: the next position to look at in epoch `epoch`'s order. Plain JSON. */
export interface SamplerCursor {
  epoch: number;
  /** Index into the epoch's full order (all workers' positions), 0 <= position <= rows. */
  position: number;
  seed: number;
  /** "i/N" when the run is one worker of N. */
  shard?: string;
  /** The order the cursor belongs to (checked on restore). */
  shuffle?: ShuffleMode;
  /** Total rows of the data set the cursor belongs to (checked on restore). */
  rows?: number;
}

/** Parses `--shard i/N`. */
export function parseShardSpec(spec: string): ShardSpec {
  const m = /^\s*(\d+)\s*\/\s*(\d+)\s*$/.exec(spec);
  if (!m) throw new RangeError(`--shard "${spec}": expected i/N with integers, e.g. 0/4 (worker 0 of 4)`);
  const index = Number(m[1]);
  const count = Number(m[2]);
  if (!Number.isSafeInteger(count) || count < 1) throw new RangeError(`--shard "${spec}": N must be at least 1`);
  if (!Number.isSafeInteger(index) || index >= count) {
    throw new RangeError(`--shard "${spec}": i must satisfy 0 <= i < N (workers are numbered 0..${count - 1})`);
  }
  return { index, count };
}

export function formatShardSpec(s: ShardSpec): string {
  return `${s.index}/${s.count}`;
}

/** True when position `p` of an epoch order belongs to worker `shard` (every position when no shard). */
export function ownsPosition(p: number, shard: ShardSpec | undefined): boolean {
  return !shard || p % shard.count === shard.index;
}

/** The first position >= p that worker `shard` owns. */
export function nextOwnedPosition(p: number, shard: ShardSpec | undefined): number {
  if (!shard) return p;
  const r = p % shard.count;
  return r <= shard.index ? p + (shard.index - r) : p + (shard.count - r) + shard.index;
}

/** Worker `shard`'s part of a list (every N-th item from i): for eval fan-out and feature precompute. */
export function takeShard<T>(items: readonly T[], shard: ShardSpec | undefined): T[] {
  return shard ? items.filter((_, p) => p % shard.count === shard.index) : items.slice();
}

function mix32(x: number): number {
  x = Math.imul(x ^ (x >>> 16), 0x85ebca6b) >>> 0;
  x = Math.imul(x ^ (x >>> 13), 0xc2b2ae35) >>> 0;
  return (x ^ (x >>> 16)) >>> 0;
}

/** The rng seed of epoch `epoch` under run seed `seed` (a 53-bit integer; integer-only mixing, same everywhere). */
export function epochSeed(seed: number, epoch: number): number {
  if (!Number.isSafeInteger(seed) || seed < 0) throw new RangeError(`seed must be a non-negative safe integer, got ${seed}`);
  if (!Number.isSafeInteger(epoch) || epoch < 0) throw new RangeError(`epoch must be a non-negative integer, got ${epoch}`);
  const lo = seed >>> 0;
  const hi = Math.floor(seed / 2 ** 32) >>> 0;
  const e = mix32((epoch >>> 0) ^ 0x9e3779b9) ^ Math.imul(Math.floor(epoch / 2 ** 32) >>> 0, 0x632be5ab);
  const a = mix32(lo ^ e);
  const b = mix32((hi ^ mix32(a + 0x7f4a7c15)) >>> 0);
  return (b & 0x1fffff) * 2 ** 32 + a;
}

/** A seeded Fisher-Yates permutation of 0..n-1 for (seed, epoch). */
export function epochPermutation(n: number, seed: number, epoch: number): Uint32Array {
  if (!Number.isSafeInteger(n) || n < 0 || n > 2 ** 32) throw new RangeError(`permutation size must be in [0, 2^32], got ${n}`);
  const perm = new Uint32Array(n);
  for (let i = 0; i < n; i++) perm[i] = i;
  shuffleInPlace(perm, createRng(epochSeed(seed, epoch)));
  return perm;
}

function shuffleInPlace(a: Uint32Array, rng: Rng): void {
  for (let i = a.length - 1; i > 0; i--) {
    const j = rng.nextInt(i + 1);
    const t = a[i]!;
    a[i] = a[j]!;
    a[j] = t;
  }
}

/** "auto" resolved by row count. */
export function chooseShuffleMode(mode: ShuffleMode | "auto", rows: number, maxPermutationRows = MAX_PERMUTATION_ROWS): ShuffleMode {
  if (mode !== "auto") return mode;
  return rows <= maxPermutationRows ? "permutation" : "buffer";
}

/** Global row numbers over shards: global index <-> (shard, row). */
export class RowIndex {
  /** offsets[s] = first global index of shard s; offsets[shards] = total. */
  readonly offsets: Float64Array;

  constructor(readonly shardRows: readonly number[]) {
    this.offsets = new Float64Array(shardRows.length + 1);
    shardRows.forEach((n, s) => {
      if (!Number.isSafeInteger(n) || n < 0) throw new RangeError(`shard ${s}: row count must be a non-negative integer, got ${n}`);
      this.offsets[s + 1] = this.offsets[s]! + n;
    });
  }

  get total(): number {
    return this.offsets[this.offsets.length - 1]!;
  }

  globalIndex(shard: number, row: number): number {
    return this.offsets[shard]! + row;
  }

  /** (shard, row) of global index g (binary search over the shard offsets). */
  locate(g: number): { shard: number; row: number } {
    if (!(Number.isInteger(g) && g >= 0 && g < this.total)) throw new RangeError(`row index ${g} out of range [0, ${this.total})`);
    let lo = 0;
    let hi = this.shardRows.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (this.offsets[mid]! <= g) lo = mid;
      else hi = mid - 1;
    }
    return { shard: lo, row: g - this.offsets[lo]! };
  }
}

/**
 * The "buffer" order of one epoch over global row indices, without data: input = shards in a seeded order, each
 * shard's rows in order; the first `size` inputs fill the buffer, then each step emits a seeded-random buffer slot
 * and refills it with the next input (at the end of the input the buffer drains). Deterministic in (shardRows,
 * size, seed, epoch); `skipTo(position)` replays the integer state, which is how a cursor resumes it.
 */
export class ShuffleBufferOrder {
  readonly total: number;
  /** Steps taken = positions emitted. */
  position = 0;
  private readonly rng: Rng;
  private readonly shardOrder: Uint32Array;
  private readonly buf: number[] = [];
  private filled = false;
  /** Input pointer: shardOrder[k], row `row`. */
  private k = 0;
  private row = 0;

  constructor(private readonly index: RowIndex, readonly size: number, seed: number, epoch: number) {
    if (!Number.isSafeInteger(size) || size < 1) throw new RangeError(`shuffle buffer size must be a positive integer, got ${size}`);
    this.total = index.total;
    this.rng = createRng(epochSeed(seed, epoch));
    this.shardOrder = new Uint32Array(index.shardRows.length);
    for (let i = 0; i < this.shardOrder.length; i++) this.shardOrder[i] = i;
    shuffleInPlace(this.shardOrder, this.rng);
  }

  /** The next input (shard, row) the order will read, or undefined when the input is exhausted. */
  nextInput(): { shard: number; row: number } | undefined {
    while (this.k < this.shardOrder.length && this.row >= this.index.shardRows[this.shardOrder[this.k]!]!) {
      this.k++;
      this.row = 0;
    }
    return this.k < this.shardOrder.length ? { shard: this.shardOrder[this.k]!, row: this.row } : undefined;
  }

  private readInput(inserted: number[] | undefined): number | undefined {
    const at = this.nextInput();
    if (!at) return undefined;
    this.row++;
    const g = this.index.globalIndex(at.shard, at.row);
    inserted?.push(g);
    return g;
  }

  /** Emits the global index at the current position (undefined at the end); inputs read on the way go to `inserted`. */
  step(inserted?: number[]): number | undefined {
    if (this.position >= this.total) return undefined;
    if (!this.filled) {
      while (this.buf.length < this.size) {
        const g = this.readInput(inserted);
        if (g === undefined) break;
        this.buf.push(g);
      }
      this.filled = true;
    }
    const j = this.rng.nextInt(this.buf.length);
    const out = this.buf[j]!;
    const next = this.readInput(inserted);
    if (next !== undefined) this.buf[j] = next;
    else {
      this.buf[j] = this.buf[this.buf.length - 1]!;
      this.buf.pop();
    }
    this.position++;
    return out;
  }

  /** Replays steps up to `position` (integers only). */
  skipTo(position: number): void {
    if (position < this.position || position > this.total) {
      throw new RangeError(`shuffle buffer: cannot move from position ${this.position} to ${position} (epoch has ${this.total})`);
    }
    while (this.position < position) this.step();
  }

  /** Global indices held in the buffer now (read but not yet emitted). */
  buffered(): number[] {
    return this.buf.slice();
  }
}

/** Checks a restored cursor against the run it is restored into; returns it normalised. */
export function checkCursor(c: unknown, run: { seed: number; shard?: ShardSpec; shuffle: ShuffleMode; rows: number }): SamplerCursor {
  const bad = (why: string): never => {
    throw new RangeError(`cannot resume from cursor ${JSON.stringify(c)}: ${why}`);
  };
  if (!c || typeof c !== "object") return bad("not an object");
  const k = c as Partial<SamplerCursor>;
  if (!Number.isSafeInteger(k.epoch) || k.epoch! < 0) bad("epoch must be a non-negative integer");
  if (!Number.isSafeInteger(k.position) || k.position! < 0 || k.position! > run.rows) bad(`position must be an integer in [0, ${run.rows}]`);
  if (k.seed !== run.seed) bad(`it was saved with seed ${String(k.seed)}, this run uses ${run.seed}`);
  const shard = run.shard ? formatShardSpec(run.shard) : undefined;
  if ((k.shard ?? undefined) !== shard) bad(`it was saved by worker ${k.shard ?? "(unsharded)"}, this run is ${shard ?? "(unsharded)"}`);
  if (k.shuffle !== undefined && k.shuffle !== run.shuffle) bad(`it was saved with shuffle "${k.shuffle}", this run uses "${run.shuffle}"`);
  if (k.rows !== undefined && k.rows !== run.rows) bad(`it was saved for ${k.rows} rows, the data now has ${run.rows}`);
  return { epoch: k.epoch!, position: k.position!, seed: run.seed, ...(shard ? { shard } : {}), shuffle: run.shuffle, rows: run.rows };
}
