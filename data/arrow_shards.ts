// Arrow shard sets: open plain *.arrow/*.feather files (IPC stream or file format), globs, lists and HF save_to_disk
// folders; stream rows one record batch at a time (positioned reads into one reused buffer, so memory stays at about
// one batch message plus the rows' own copies), resume from a cursor, and read chosen rows by (shard, row) for seeded
// permutations.
//
// Cost model: openShards reads only message headers (a few hundred bytes per record batch) to count rows and find
// truncated shards. rows() reads each byte once, sequentially. readRows(shard, rows) reads every record batch that
// holds a requested row once per call (one positioned read of that batch, ~batchRows rows' worth of bytes), so a
// permutation should request rows in groups per shard (and ideally per batch) rather than one row per call;
// the last batch read is cached, so consecutive rows of one batch cost one read. Random access reads into one
// buffer per ShardSet (calls run one at a time), so a permutation does not leave a batch-sized garbage buffer per read.
import type { FileHandle } from "node:fs/promises";
import { open } from "node:fs/promises";
import path from "node:path";
import type { RecordBatch, Schema } from "apache-arrow";
import { DataError } from "../core/errors.js";
import { Progress, warn } from "../core/log.js";
import { batchRowToPlain, validateBatch } from "./arrow_values.js";
import type { HfFeatures } from "./hf_datasets.js";
import { featuresFromMetadata } from "./hf_datasets.js";
import type { IpcIndex } from "./ipc_index.js";
import { BatchBuffer, DictionaryMessages, readRecordBatch } from "./ipc_batches.js";
import { batchOfRow, indexIpcFile } from "./ipc_index.js";
import { resolveShardSpec } from "./shard_paths.js";
import type { OnError } from "./skip_report.js";
import { SkipReport } from "./skip_report.js";

export interface ShardInfo {
  file: string;
  /** Rows in the shard (known once its headers were read; openShards reads them unless countRows is false). */
  rows?: number;
  batches?: number;
  bytes?: number;
  format?: "stream" | "file";
}

export interface ColumnInfo {
  name: string;
  /** Arrow type as apache-arrow prints it: "Utf8", "List<Utf8>", "Struct<{bytes:Binary, path:Utf8}>". */
  type: string;
  nullable: boolean;
  /** The HF feature of this column, when the shard carries `huggingface` metadata or dataset_info.json. */
  feature?: unknown;
}

export interface ShardSchema {
  columns: ColumnInfo[];
  features?: HfFeatures;
  arrow: Schema;
}

/** Where a row came from: shard index in the set, file, record batch within the file, row within the file. */
export interface RowWhere {
  shard: number;
  file: string;
  batch: number;
  row: number;
}

/** Position to resume a sequential pass: the next row to read is `row` (within the file) of shard `shard`. */
export interface Cursor {
  shard: number;
  row: number;
}

export interface ShardRow {
  row: Record<string, unknown>;
  where: RowWhere;
}

export interface OpenShardsOptions {
  /** Split of a DatasetDict folder. */
  split?: string;
  /** Read every shard's headers now (row counts, truncation check). Default true. */
  countRows?: boolean;
  /** "raise" (default): the first bad shard or value throws DataError. "skip": drop it and record it in `report`. */
  onError?: OnError;
  report?: SkipReport;
}

/** The cursor that resumes right after the row at `where`. */
export function cursorAfter(where: RowWhere): Cursor {
  return { shard: where.shard, row: where.row + 1 };
}

/** Opens shards from a path, glob, HF folder or list of them. */
export async function openShards(spec: string | string[], opts: OpenShardsOptions = {}): Promise<ShardSet> {
  const resolved = await resolveShardSpec(spec, { split: opts.split });
  const set = new ShardSet(resolved.files, opts.onError ?? "raise", opts.report ?? new SkipReport());
  await set.init(resolved.features, opts.countRows ?? true);
  const total = set.totalRows;
  if (resolved.numRows !== undefined && total !== undefined && total !== resolved.numRows && set.report.empty) {
    const msg = `dataset_info.json records ${resolved.numRows} rows, the shards hold ${total}`;
    if (set.onError === "raise") throw new DataError(msg, { file: path.join(path.dirname(set.shards[0]!.file), "dataset_info.json") });
    warn(msg);
  }
  return set;
}

export class ShardSet {
  readonly shards: ShardInfo[];
  schema!: ShardSchema;
  private readonly indexes: (Promise<IpcIndex> | undefined)[];
  private cached?: { shard: number; batch: number; data: RecordBatch };
  /** Random access reads into one buffer, one readRows call at a time (the cached batch is a view into it). */
  private readonly pool = new BatchBuffer();
  private exclusive: Promise<unknown> = Promise.resolve();

  constructor(files: string[], readonly onError: OnError, readonly report: SkipReport) {
    this.shards = files.map((file) => ({ file }));
    this.indexes = files.map(() => undefined);
  }

  /** @internal Reads the schema (first readable shard) and, with countRows, every shard's headers. */
  async init(folderFeatures: HfFeatures | undefined, countRows: boolean): Promise<void> {
    let first: IpcIndex | undefined;
    const failed: number[] = [];
    let lastError: unknown;
    for (let s = 0; s < this.shards.length && !first; s++) {
      try {
        first = await this.loadIndex(s, undefined);
      } catch (e) {
        if (this.onError === "raise" || !(e instanceof DataError)) throw e;
        this.report.add(e, "unknown");
        failed.push(s);
        lastError = e;
      }
    }
    if (!first) throw lastError ?? new DataError("no readable shards");
    for (const s of failed) {
      this.indexes[s] = Promise.resolve(emptyIndex(this.shards[s]!.file, first.schema));
      Object.assign(this.shards[s]!, { rows: 0, batches: 0 });
    }
    const features = featuresFromMetadata(first.schema.metadata.get("huggingface"), first.file) ?? folderFeatures;
    this.schema = {
      arrow: first.schema,
      features,
      columns: first.schema.fields.map((f) => ({
        name: f.name,
        type: String(f.type),
        nullable: f.nullable,
        feature: features?.[f.name],
      })),
    };
    if (!countRows) return;
    const bar = this.shards.length >= 64 ? new Progress({ total: this.shards.length, label: "indexing shards" }) : undefined;
    for (let s = 0; s < this.shards.length; s++) {
      await this.index(s);
      bar?.tick();
    }
    bar?.finish();
  }

  /** Total rows, once every shard's headers were read. */
  get totalRows(): number | undefined {
    let n = 0;
    for (const s of this.shards) {
      if (s.rows === undefined) return undefined;
      n += s.rows;
    }
    return n;
  }

  /** The header index of shard `s` (batch offsets and row counts), read on first use. */
  index(s: number): Promise<IpcIndex> {
    if (!(s >= 0 && s < this.shards.length)) return Promise.reject(new DataError(`no shard ${s} (set has ${this.shards.length})`));
    return (this.indexes[s] ??= this.loadIndex(s, this.schema?.arrow));
  }

  private async loadIndex(s: number, schema: Schema | undefined): Promise<IpcIndex> {
    const info = this.shards[s]!;
    const p = (async () => {
      let idx: IpcIndex;
      try {
        idx = await indexIpcFile(info.file, { keepPrefix: this.onError === "skip" });
      } catch (e) {
        if (this.onError === "raise" || !(e instanceof DataError) || !schema) throw e;
        this.report.add(e, "unknown");
        idx = emptyIndex(info.file, schema);
      }
      if (idx.problem) this.report.add(idx.problem.error, idx.problem.rows ?? "unknown");
      if (schema) checkSameSchema(schema, idx.schema, info.file);
      Object.assign(info, { rows: idx.rows, batches: idx.batchRows.length, bytes: idx.bytes, format: idx.format });
      return idx;
    })();
    this.indexes[s] = p;
    return p;
  }

  /**
   * Every row in order (shard by shard, batch by batch), from `from` on. Memory stays at about one record batch.
   * Bad values: DataError (onError "raise") or skipped and counted in `report` ("skip").
   */
  async *rows(opts: { from?: Cursor } = {}): AsyncGenerator<ShardRow> {
    const from = opts.from ?? { shard: 0, row: 0 };
    if (!(from.shard >= 0 && from.shard <= this.shards.length && from.row >= 0)) {
      throw new DataError(`bad cursor {shard: ${from.shard}, row: ${from.row}}`);
    }
    for (let s = from.shard; s < this.shards.length; s++) {
      const idx = await this.index(s);
      const start = s === from.shard ? from.row : 0;
      if (start > idx.rows) throw new DataError(`cursor row ${start} is past the shard's ${idx.rows} rows`, { file: idx.file });
      if (start === idx.rows) continue;
      yield* this.shardRows(s, idx, start);
    }
  }

  private async *shardRows(s: number, idx: IpcIndex, startRow: number): AsyncGenerator<ShardRow> {
    const nBatches = idx.batchRows.length;
    let b = batchOfRow(idx, startRow);
    let skipInBatch = startRow - idx.firstRow[b]!;
    let fh: FileHandle;
    try {
      fh = await openShard(idx.file);
    } catch (e) {
      if (this.onError === "raise") throw e;
      this.report.add(e as DataError, idx.rows - startRow);
      return;
    }
    // One read buffer for the whole pass: batch b's column buffers are views into it until batch b + 1 is read, and
    // every row is converted (copied) before that happens.
    const buffer = new BatchBuffer();
    const dicts = new DictionaryMessages(idx);
    try {
      for (; b < nBatches; b++, skipInBatch = 0) {
        let batch: RecordBatch;
        const base = idx.firstRow[b]!;
        try {
          batch = await readRecordBatch(fh, idx, b, dicts, buffer);
          validateBatch(batch, { file: idx.file, batch: b, row: base });
        } catch (e) {
          const err = asDataError(e, idx.file, b, base + skipInBatch);
          if (this.onError === "raise") throw err;
          this.report.add(err, idx.batchRows[b]! - skipInBatch);
          continue;
        }
        for (let i = skipInBatch; i < batch.numRows; i++) {
          const where: RowWhere = { shard: s, file: idx.file, batch: b, row: base + i };
          const row = this.convert(batch, i, where);
          if (row) yield { row, where };
        }
      }
    } finally {
      await fh.close();
    }
  }

  /** Reads rows `rows` (row numbers within the file) of shard `s`, returned in the order asked; see cost model above. */
  readRows(s: number, rows: number[]): Promise<ShardRow[]> {
    const run = this.exclusive.then(() => this.readRowsNow(s, rows));
    this.exclusive = run.catch(() => undefined);
    return run;
  }

  private async readRowsNow(s: number, rows: number[]): Promise<ShardRow[]> {
    const idx = await this.index(s);
    const order = rows.map((r, k) => ({ r, k })).sort((a, b) => a.r - b.r);
    const out: (ShardRow | undefined)[] = new Array(rows.length);
    for (const { r, k } of order) {
      if (!(Number.isInteger(r) && r >= 0 && r < idx.rows)) {
        throw new DataError(`row ${r} out of range (shard has ${idx.rows} rows)`, { file: idx.file, row: r });
      }
      const b = batchOfRow(idx, r);
      const where: RowWhere = { shard: s, file: idx.file, batch: b, row: r };
      let batch: RecordBatch;
      try {
        batch = await this.loadBatch(s, idx, b);
      } catch (e) {
        const err = asDataError(e, idx.file, b, r);
        if (this.onError === "raise") throw err;
        this.report.add(err, 1);
        continue;
      }
      const row = this.convert(batch, r - idx.firstRow[b]!, where);
      if (row) out[k] = { row, where };
    }
    return out.filter((x): x is ShardRow => x !== undefined);
  }

  /** Every row of record batch `b` of shard `s` (one positioned read). */
  async readBatch(s: number, b: number): Promise<ShardRow[]> {
    const idx = await this.index(s);
    if (!(b >= 0 && b < idx.batchRows.length)) throw new DataError(`no record batch ${b}`, { file: idx.file, batch: b });
    const first = idx.firstRow[b]!;
    return this.readRows(s, Array.from({ length: idx.batchRows[b]! }, (_, i) => first + i));
  }

  private async loadBatch(s: number, idx: IpcIndex, b: number): Promise<RecordBatch> {
    const c = this.cached;
    if (c && c.shard === s && c.batch === b) return c.data;
    this.cached = undefined;
    const fh = await openShard(idx.file);
    let data: RecordBatch;
    try {
      data = await readRecordBatch(fh, idx, b, new DictionaryMessages(idx), this.pool);
    } finally {
      await fh.close();
    }
    validateBatch(data, { file: idx.file, batch: b, row: idx.firstRow[b] });
    this.cached = { shard: s, batch: b, data };
    return data;
  }

  /** Row -> plain object; a value that cannot be converted raises or is skipped per onError. */
  private convert(batch: RecordBatch, i: number, where: RowWhere): Record<string, unknown> | undefined {
    try {
      return batchRowToPlain(batch, i, where);
    } catch (e) {
      const err = asDataError(e, where.file, where.batch, where.row);
      if (this.onError === "raise") throw err;
      this.report.add(err, 1);
      return undefined;
    }
  }
}

/** Opens a shard for positioned reads (DataError naming it when it cannot be opened). */
async function openShard(file: string): Promise<FileHandle> {
  try {
    return await open(file, "r");
  } catch (e) {
    throw new DataError(`cannot open shard: ${(e as Error).message}`, { file });
  }
}

function checkSameSchema(want: Schema, got: Schema, file: string): void {
  const w = new Map(want.fields.map((f) => [f.name, String(f.type)]));
  for (const f of got.fields) {
    const t = w.get(f.name);
    if (t === undefined) throw new DataError(`column not in the first shard's schema`, { file, column: f.name });
    if (t !== String(f.type)) throw new DataError(`column type ${String(f.type)} differs from the first shard's ${t}`, { file, column: f.name });
  }
  for (const name of w.keys()) {
    if (!got.fields.some((f) => f.name === name)) throw new DataError(`column missing (the first shard has it)`, { file, column: name });
  }
}

function emptyIndex(file: string, schema: Schema): IpcIndex {
  return {
    file,
    format: "stream",
    bytes: 0,
    schema,
    schemaMessage: new Uint8Array(0),
    dictionaries: [],
    batchStart: new Float64Array(0),
    batchEnd: new Float64Array(0),
    batchRows: new Float64Array(0),
    firstRow: new Float64Array(1),
    rows: 0,
  };
}

function asDataError(e: unknown, file: string, batch: number, row?: number): DataError {
  if (e instanceof DataError) return e;
  return new DataError(`corrupt shard: ${(e as Error)?.message ?? String(e)}`, { file, batch, row });
}
