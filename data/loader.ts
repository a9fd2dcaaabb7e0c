// The streaming batch loader: rows (RowSource) -> samples (an injected encoder: tokenize + preprocess) -> padded
// batches, in the sampler's seeded order, for one worker of `--shard i/N`, over several epochs, with a bounded
// read-ahead (Prefetch) so decoding the next batches overlaps the caller's work on the current one.
//
// Determinism: a batch is the first batchSize rows of the epoch order (from the cursor on) that read and encode
// without error, in order; batches never span epochs (the last one of an epoch may be short, or dropped with
// dropLast). Each batch carries the cursor that resumes right after it, so restoring that cursor in a fresh loader
// gives exactly the batches an uninterrupted run would, skipped rows and the shuffle buffer included.
// Bad rows: onError "raise" throws the first DataError (naming file, record batch, row); "skip" counts it in the
// SkipReport (rows the source drops are counted by the source, e.g. ShardSet with the same report).
// Overlap: reads and sharp's image decode run off the JS thread, so they overlap the consumer's work; JS-side steps
// (resize, normalize, tokenize) share the consumer's thread. The encoder is any async function, so a worker-thread
// pool can run them elsewhere without changing the loader (samples are typed arrays, transferable).
// Cost: "permutation" reads one Arrow record batch per requested row group (ShardSet.readRows); rows of one batch
// that fall into the same wave are read once. "buffer" reads every byte once, sequentially; with --shard each worker
// still streams all rows (and encodes only its own).
import { DataError } from "../core/errors.js";
import { warn } from "../core/log.js";
import type { RowWhere, ShardSet } from "./arrow_shards.js";
import { checkSample, collate } from "./batch.js";
import type { Batch, CollateOptions, Sample, SampleWhere } from "./batch.js";
import { Prefetch } from "./prefetch.js";
import type { SamplerCursor, ShardSpec, ShuffleMode } from "./sampler.js";
import {
  DEFAULT_BUFFER_SIZE, RowIndex, ShuffleBufferOrder, checkCursor, chooseShuffleMode, epochPermutation, formatShardSpec,
  nextOwnedPosition, ownsPosition, parseShardSpec,
} from "./sampler.js";
import type { OnError } from "./skip_report.js";
import { RowError, SkipReport } from "./skip_report.js";

/** A row and where it is. */
export interface SourceRow<R> {
  row: R;
  where: RowWhere;
}

/** What the loader needs from the data layer (ShardSet through shardSetSource, or a fake in tests). */
export interface RowSource<R> {
  /** Rows per shard. */
  readonly shardRows: readonly number[];
  /** Rows `rows` (within the file) of shard `shard`; a row the source cannot read is left out (and reported by it). */
  readRows(shard: number, rows: number[]): Promise<SourceRow<R>[]>;
  /** Rows of shard `shard` from row `from` on, in order; unreadable rows left out (and reported by the source). */
  streamShard(shard: number, from: number): AsyncIterable<SourceRow<R>>;
}

/** Where an item of the epoch order is: the source location plus epoch and position. */
export type ItemWhere = RowWhere & { epoch: number; position: number };

/** Row -> sample (tokenize, load and preprocess images). Throw DataError for a bad row. */
export type Encoder<R> = (row: R, where: ItemWhere) => Sample | Promise<Sample>;

export interface LoaderOptions<R> {
  source: RowSource<R>;
  encode: Encoder<R>;
  batchSize: number;
  /** Padding: padId (tokenizer pad ?? unk ?? 0), padSide, padToMultipleOf. */
  collate: CollateOptions;
  /** Run seed (non-negative integer). Default 0. */
  seed?: number;
  /** Passes over the data. Default 1; Infinity for a run bounded by steps. */
  epochs?: number;
  /** Order: "auto" (default: permutation up to maxPermutationRows, else buffer), "permutation", "buffer", "none". */
  shuffle?: ShuffleMode | "auto";
  bufferSize?: number;
  maxPermutationRows?: number;
  /** This worker's part, "i/N" or {index, count}. */
  shard?: ShardSpec | string;
  /** Batches produced ahead of the consumer (default 2; 0 = on demand). */
  prefetch?: number;
  /** Drop the short last batch of each epoch. Default false. */
  dropLast?: boolean;
  onError?: OnError;
  report?: SkipReport;
  /** Start here (a cursor saved from LoaderBatch.cursor or loader.cursor()). */
  resume?: SamplerCursor;
}

export interface LoaderBatch extends Batch {
  /** Resumes right after this batch. */
  cursor: SamplerCursor;
  /** Epoch of this batch's rows. */
  epoch: number;
}

interface Item<R> {
  position: number;
  index: number;
  /** undefined: the source could not read the row (it reported it). */
  src?: SourceRow<R>;
}

/** One epoch's items for one worker, from a position on. */
interface EpochItems<R> {
  readonly position: number;
  /** The next up to n owned items; `end` when no owned position is left in the epoch. */
  take(n: number): Promise<{ items: Item<R>[]; end: boolean }>;
  close(): Promise<void>;
}

/** A RowSource over a ShardSet (row counts must be known: openShards with countRows, the default). */
export function shardSetSource(set: ShardSet): RowSource<Record<string, unknown>> {
  const shardRows = set.shards.map((s, i) => {
    if (s.rows === undefined) throw new DataError(`shard ${i}: row count unknown (open the shards with countRows)`, { file: s.file });
    return s.rows;
  });
  return {
    shardRows,
    readRows: (shard, rows) => set.readRows(shard, rows),
    async *streamShard(shard, from) {
      for await (const r of set.rows({ from: { shard, row: from } })) {
        if (r.where.shard !== shard) return;
        yield r;
      }
    },
  };
}

/** Reads owned positions of a permutation (or the identity) by random access, grouped per shard. */
class PermutationItems<R> implements EpochItems<R> {
  constructor(
    private readonly source: RowSource<R>,
    private readonly index: RowIndex,
    private readonly order: Uint32Array | undefined,
    private readonly shard: ShardSpec | undefined,
    public position: number,
  ) {}

  async take(n: number): Promise<{ items: Item<R>[]; end: boolean }> {
    const total = this.index.total;
    const items: Item<R>[] = [];
    let p = nextOwnedPosition(this.position, this.shard);
    while (items.length < n && p < total) {
      items.push({ position: p, index: this.order ? this.order[p]! : p });
      this.position = p + 1;
      p = nextOwnedPosition(this.position, this.shard);
    }
    const byShard = new Map<number, Item<R>[]>();
    for (const it of items) {
      const { shard } = this.index.locate(it.index);
      const list = byShard.get(shard) ?? [];
      list.push(it);
      byShard.set(shard, list);
    }
    for (const [shard, list] of byShard) {
      const got = await this.source.readRows(shard, list.map((it) => it.index - this.index.offsets[shard]!));
      const byRow = new Map(got.map((r) => [r.where.row, r]));
      for (const it of list) it.src = byRow.get(it.index - this.index.offsets[shard]!);
    }
    return { items, end: p >= total };
  }

  async close(): Promise<void> {}
}

/** Streams rows sequentially through the index-level shuffle buffer; the buffer's rows are held here. */
class BufferItems<R> implements EpochItems<R> {
  private readonly held = new Map<number, SourceRow<R> | null>();
  private stream?: { shard: number; it: AsyncIterator<SourceRow<R>>; look?: SourceRow<R>; next: number };
  private restored = false;

  constructor(
    private readonly source: RowSource<R>,
    private readonly index: RowIndex,
    private readonly order: ShuffleBufferOrder,
    private readonly shard: ShardSpec | undefined,
  ) {}

  get position(): number {
    return this.order.position;
  }

  /** After a resume: the rows the buffer held at the cursor, by random access. */
  private async restore(): Promise<void> {
    this.restored = true;
    const byShard = new Map<number, number[]>();
    for (const g of this.order.buffered()) {
      const { shard, row } = this.index.locate(g);
      const list = byShard.get(shard) ?? [];
      list.push(row);
      byShard.set(shard, list);
    }
    for (const [shard, rows] of byShard) {
      const got = new Map((await this.source.readRows(shard, rows)).map((r) => [r.where.row, r]));
      for (const row of rows) this.held.set(this.index.globalIndex(shard, row), got.get(row) ?? null);
    }
  }

  /** The row at global index g from the sequential stream (null when the source skipped it). */
  private async readNext(g: number): Promise<SourceRow<R> | null> {
    const { shard, row } = this.index.locate(g);
    if (!this.stream || this.stream.shard !== shard || this.stream.next > row) {
      await this.stream?.it.return?.();
      this.stream = { shard, it: this.source.streamShard(shard, row)[Symbol.asyncIterator](), next: row };
    }
    const s = this.stream;
    s.next = row + 1;
    for (;;) {
      if (!s.look) {
        const r = await s.it.next();
        if (r.done) return null;
        s.look = r.value;
      }
      if (s.look.where.row < row) s.look = undefined;
      else if (s.look.where.row === row) {
        const v = s.look;
        s.look = undefined;
        return v;
      } else return null;
    }
  }

  async take(n: number): Promise<{ items: Item<R>[]; end: boolean }> {
    if (!this.restored) await this.restore();
    const items: Item<R>[] = [];
    const total = this.order.total;
    while (items.length < n && this.order.position < total) {
      const position = this.order.position;
      const inserted: number[] = [];
      const g = this.order.step(inserted)!;
      for (const i of inserted) this.held.set(i, await this.readNext(i));
      const src = this.held.get(g) ?? undefined;
      this.held.delete(g);
      if (ownsPosition(position, this.shard)) items.push({ position, index: g, src });
    }
    // Positions this worker does not own, up to its next one, are stepped over by the next take.
    return { items, end: nextOwnedPosition(this.order.position, this.shard) >= total };
  }

  async close(): Promise<void> {
    await this.stream?.it.return?.();
    this.stream = undefined;
  }
}

/** Gives an encoder error its row context (file, record batch, row) when it lacks it. */
function withContext(e: unknown, where: ItemWhere): Error {
  const at = { file: where.file, batch: where.batch, row: where.row };
  if (e instanceof DataError) {
    if (e.where.file !== undefined && e.where.row !== undefined) return e;
    const prefix = new DataError("", e.where).message; // "column \"x\": " or ""
    let raw = e.message.startsWith(prefix) ? e.message.slice(prefix.length) : e.message;
    let out: DataError;
    if (e instanceof RowError) {
      if (raw.startsWith(`${e.reason}: `)) raw = raw.slice(e.reason.length + 2);
      out = new RowError(e.reason, raw, { ...at, column: e.where.column });
    } else out = new DataError(raw, { ...at, column: e.where.column });
    out.cause = e;
    return out;
  }
  // Not a data problem (a bug): keep it fatal in skip mode too, but say which row it happened on.
  const msg = e instanceof Error ? e.message : String(e);
  const out = new Error(new DataError(`encoding failed: ${msg}`, at).message, { cause: e });
  if (e instanceof Error) out.name = e.name;
  return out;
}

/** The loader; iterate it (for await) or call next(). cursor() resumes after the last batch handed out. */
export class BatchLoader<R> implements AsyncIterable<LoaderBatch> {
  readonly report: SkipReport;
  readonly shuffle: ShuffleMode;
  readonly rows: number;
  readonly seed: number;
  readonly epochs: number;
  readonly shard: ShardSpec | undefined;
  private readonly index: RowIndex;
  private readonly onError: OnError;
  private epoch: number;
  private position: number;
  private items?: EpochItems<R>;
  private last: SamplerCursor;
  private readonly ahead: Prefetch<LoaderBatch>;
  private warned = false;
  /** Samples produced in the current epoch (an endless run over data with no usable row must stop). */
  private epochSamples = 0;
  private epochFromStart: boolean;

  constructor(private readonly opts: LoaderOptions<R>) {
    if (!Number.isInteger(opts.batchSize) || opts.batchSize < 1) throw new RangeError(`batchSize must be a positive integer, got ${opts.batchSize}`);
    this.index = new RowIndex(opts.source.shardRows);
    this.rows = this.index.total;
    this.seed = opts.seed ?? 0;
    this.epochs = opts.epochs ?? 1;
    if (!(this.epochs === Infinity || (Number.isInteger(this.epochs) && this.epochs >= 0))) {
      throw new RangeError(`epochs must be a non-negative integer or Infinity, got ${this.epochs}`);
    }
    this.shard = typeof opts.shard === "string" ? parseShardSpec(opts.shard) : opts.shard;
    if (this.shard) parseShardSpec(formatShardSpec(this.shard));
    this.shuffle = chooseShuffleMode(opts.shuffle ?? "auto", this.rows, opts.maxPermutationRows);
    this.onError = opts.onError ?? "raise";
    this.report = opts.report ?? new SkipReport();
    const start = opts.resume
      ? checkCursor(opts.resume, { seed: this.seed, shard: this.shard, shuffle: this.shuffle, rows: this.rows })
      : this.cursorAt(0, 0);
    this.epoch = start.epoch;
    this.position = start.position;
    this.last = start;
    this.epochFromStart = start.position === 0;
    this.ahead = new Prefetch(() => this.buildBatch(), opts.prefetch ?? 2);
  }

  private cursorAt(epoch: number, position: number): SamplerCursor {
    return {
      epoch,
      position,
      seed: this.seed,
      ...(this.shard ? { shard: formatShardSpec(this.shard) } : {}),
      shuffle: this.shuffle,
      rows: this.rows,
    };
  }

  /** The cursor that resumes after the last batch handed to the consumer (plain JSON). */
  cursor(): SamplerCursor {
    return { ...this.last };
  }

  private openEpoch(epoch: number, position: number): EpochItems<R> {
    const { source } = this.opts;
    if (this.shuffle === "buffer") {
      const order = new ShuffleBufferOrder(this.index, this.opts.bufferSize ?? DEFAULT_BUFFER_SIZE, this.seed, epoch);
      order.skipTo(position);
      return new BufferItems(source, this.index, order, this.shard);
    }
    const perm = this.shuffle === "permutation" ? epochPermutation(this.rows, this.seed, epoch) : undefined;
    return new PermutationItems(source, this.index, perm, this.shard, position);
  }

  private async encodeItem(it: Item<R>, epoch: number): Promise<{ sample: Sample; where: ItemWhere }> {
    const where: ItemWhere = { ...it.src!.where, epoch, position: it.position };
    try {
      const sample = await this.opts.encode(it.src!.row, where);
      checkSample(sample, where);
      return { sample, where };
    } catch (e) {
      throw withContext(e, where);
    }
  }

  /** The next batch (stateful: advances epoch/position), or undefined after the last epoch. */
  private async buildBatch(): Promise<LoaderBatch | undefined> {
    const B = this.opts.batchSize;
    for (;;) {
      const samples: Sample[] = [];
      const wheres: SampleWhere[] = [];
      let epochEnded = false;
      const epoch = this.epoch;
      while (samples.length < B && this.epoch < this.epochs) {
        this.items ??= this.openEpoch(this.epoch, this.position);
        const { items, end } = await this.items.take(B - samples.length);
        this.position = this.items.position;
        const results = await Promise.allSettled(items.filter((it) => it.src).map((it) => this.encodeItem(it, epoch)));
        for (const r of results) {
          if (r.status === "fulfilled") {
            this.epochSamples++;
            samples.push(r.value.sample);
            wheres.push(r.value.where);
          } else if (this.onError === "raise" || !(r.reason instanceof DataError)) {
            throw r.reason;
          } else this.report.add(r.reason, 1);
        }
        if (end) {
          await this.items.close();
          this.items = undefined;
          this.epoch++;
          this.position = 0;
          epochEnded = true;
          if (this.epochSamples === 0 && this.epochFromStart && this.epochs === Infinity) {
            throw new DataError(`epoch ${this.epoch - 1} gave no usable row (${this.rows} rows; ${this.report.summary()})`);
          }
          this.epochSamples = 0;
          this.epochFromStart = true;
          break;
        }
      }
      if (samples.length === 0 && this.epoch >= this.epochs) return undefined;
      if (samples.length === 0 || (epochEnded && samples.length < B && this.opts.dropLast)) continue;
      const batch = collate(samples, this.opts.collate, wheres);
      return { ...batch, epoch, cursor: this.cursorAt(this.epoch, this.position) };
    }
  }

  async next(): Promise<IteratorResult<LoaderBatch>> {
    const r = await this.ahead.next();
    if (r.done) {
      if (!this.warned && !this.report.empty) warn(this.report.summary());
      this.warned = true;
      return r;
    }
    this.last = r.value.cursor;
    return r;
  }

  /** Stops reading ahead and closes the open stream. */
  async close(): Promise<void> {
    await this.ahead.return();
    await this.items?.close();
    this.items = undefined;
  }

  [Symbol.asyncIterator](): AsyncIterator<LoaderBatch> {
    return {
      next: () => this.next(),
      return: async () => {
        await this.close();
        return { done: true, value: undefined };
      },
    };
  }
}

export function createLoader<R>(opts: LoaderOptions<R>): BatchLoader<R> {
  return new BatchLoader(opts);
}
