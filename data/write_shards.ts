// Writes Arrow shards as `datasets` does: rows -> record batches (100 rows when the features hold images or binary,
// else 1000) -> Arrow IPC stream (or file) format, streamed to disk one batch at a time; and HF save_to_disk folders
// (data-XXXXX-of-YYYYY.arrow + state.json + dataset_info.json, DatasetDict with dataset_dict.json) that
// `datasets.load_from_disk` and openShards read.
import { createHash } from "node:crypto";
import type { FileHandle } from "node:fs/promises";
import { mkdir, open, readdir, rename, rm, writeFile } from "node:fs/promises";
import path from "node:path";
import {
  Binary, Bool, DataType, Field, FixedSizeList, Float16, Float32, Float64, Int16, Int32, Int64, Int8, LargeBinary,
  LargeList, LargeUtf8, List, makeBuilder, makeData, MetadataVersion, Null, RecordBatch, RecordBatchStreamWriter,
  Schema, Struct, Type, Uint16, Uint32, Uint64, Uint8, Utf8,
} from "apache-arrow";
import type { Data } from "apache-arrow";
import { FileBlock, Footer } from "apache-arrow/ipc/metadata/file";
import { ConfigError, DataError } from "../core/errors.js";
import type { HfFeatures } from "./hf_datasets.js";
import { DATASET_DICT_JSON, DATASET_INFO_JSON, STATE_JSON } from "./hf_datasets.js";
import { EOS } from "./ipc_index.js";

export type Row = Record<string, unknown>;
export type RowSource = Iterable<Row> | AsyncIterable<Row>;

export interface ShardWriteResult {
  file: string;
  rows: number;
  batches: number;
  bytes: number;
}

// ---------------------------------------------------------------- features -> Arrow schema

const VALUE_TYPES: Record<string, () => DataType> = {
  string: () => new Utf8(), large_string: () => new LargeUtf8(), binary: () => new Binary(),
  large_binary: () => new LargeBinary(), bool: () => new Bool(), null: () => new Null(),
  int8: () => new Int8(), int16: () => new Int16(), int32: () => new Int32(), int64: () => new Int64(),
  uint8: () => new Uint8(), uint16: () => new Uint16(), uint32: () => new Uint32(), uint64: () => new Uint64(),
  float16: () => new Float16(), float32: () => new Float32(), float: () => new Float32(),
  float64: () => new Float64(), double: () => new Float64(),
};

/** The Arrow type `datasets` stores a feature as (Image = struct<bytes: binary, path: string>). */
export function featureToArrowType(feature: unknown, key = "features"): DataType {
  if (Array.isArray(feature)) {
    if (feature.length !== 1) throw new ConfigError([`${key}: a list feature holds exactly one item feature`]);
    return new List(new Field("item", featureToArrowType(feature[0], `${key}[0]`), true));
  }
  if (!feature || typeof feature !== "object") throw new ConfigError([`${key}: not a feature`]);
  const f = feature as Record<string, unknown>;
  switch (f._type) {
    case "Value": {
      const make = VALUE_TYPES[String(f.dtype)];
      if (!make) throw new ConfigError([`${key}.dtype: unsupported Value dtype "${String(f.dtype)}"`]);
      return make();
    }
    case "Image":
      return imageStructType();
    case "ClassLabel":
      return new Int64();
    case "List":
    case "LargeList":
    case "Sequence": {
      const inner = f.feature;
      const length = typeof f.length === "number" ? f.length : -1;
      if (f._type === "Sequence" && inner && typeof inner === "object" && !Array.isArray(inner) && !("_type" in inner)) {
        // Sequence of a dict is a struct of lists (TFDS compatibility)
        const fields = Object.entries(inner).map(([k, v]) =>
          new Field(k, seqType(featureToArrowType(v, `${key}.feature.${k}`), length, "Sequence"), true));
        return new Struct(fields);
      }
      return seqType(featureToArrowType(inner, `${key}.feature`), length, String(f._type));
    }
    case undefined:
      return new Struct(Object.entries(f).map(([k, v]) => new Field(k, featureToArrowType(v, `${key}.${k}`), true)));
    default:
      throw new ConfigError([`${key}: unsupported feature type "${String(f._type)}"`]);
  }
}

function seqType(item: DataType, length: number, kind: string): DataType {
  const field = new Field("item", item, true);
  if (length >= 0) return new FixedSizeList(length, field);
  return kind === "LargeList" ? new LargeList(field) : new List(field);
}

export function imageStructType(): Struct {
  return new Struct([new Field("bytes", new Binary(), true), new Field("path", new Utf8(), true)]);
}

/** Arrow schema for HF features, with the `huggingface` metadata datasets writes ({"info": {"features": ...}}). */
export function featuresToSchema(features: HfFeatures): Schema {
  const fields = Object.entries(features).map(([k, v]) => new Field(k, featureToArrowType(v, `features.${k}`), true));
  return new Schema(fields, new Map([["huggingface", JSON.stringify({ info: { features } })]]));
}

/** Rows per record batch as datasets picks it: 100 with Image/binary features, else 1000. */
export function defaultBatchRows(features: HfFeatures): number {
  const text = JSON.stringify(features);
  return /"_type":\s*"(Image|Audio)"|"dtype":\s*"(large_)?binary"/.test(text) ? 100 : 1000;
}

// ---------------------------------------------------------------- rows -> record batch

/** A record batch of `rows` in `schema` (numbers become BigInt for 64-bit columns; images may be bytes or a path). */
export function rowsToBatch(schema: Schema, rows: Row[]): RecordBatch {
  const children: Data[] = schema.fields.map((f) => {
    const builder = makeBuilder({ type: f.type, nullValues: [null, undefined] });
    rows.forEach((r, i) => {
      try {
        builder.append(prepareValue(r[f.name], f.type));
      } catch (e) {
        throw new DataError(`cannot write value: ${(e as Error).message}`, { row: i, column: f.name });
      }
    });
    return builder.finish().flush();
  });
  const data = makeData({ type: new Struct(schema.fields), length: rows.length, nullCount: 0, children });
  return new RecordBatch(schema, data);
}

function prepareValue(v: unknown, type: DataType): unknown {
  if (v === null || v === undefined) return null;
  if (DataType.isInt(type) && type.bitWidth === 64) {
    if (typeof v === "number") {
      if (!Number.isInteger(v)) throw new Error(`${v} is not an integer`);
      return BigInt(v);
    }
    return v;
  }
  if (DataType.isStruct(type)) {
    if (isImageStruct(type)) {
      if (v instanceof Uint8Array) return { bytes: v, path: null };
      if (typeof v === "string") return { bytes: null, path: v };
    }
    const o = v as Record<string, unknown>;
    const out: Record<string, unknown> = {};
    for (const f of type.children) out[f.name] = prepareValue(o[f.name], f.type);
    return out;
  }
  if (type.typeId === Type.List || type.typeId === Type.LargeList || type.typeId === Type.FixedSizeList) {
    const item = type.children[0]!.type as DataType;
    return Array.from(v as Iterable<unknown>, (x) => prepareValue(x, item));
  }
  return v;
}

function isImageStruct(type: Struct): boolean {
  const names = type.children.map((f) => f.name).join(",");
  return names === "bytes,path";
}

// ---------------------------------------------------------------- one shard file

/** Streams record batches to one Arrow IPC file; memory holds one batch at a time. */
export class ArrowShardWriter {
  private rows = 0;
  private batches = 0;
  private blocks: InstanceType<typeof FileBlock>[] = [];
  private constructor(
    readonly file: string,
    readonly schema: Schema,
    readonly format: "stream" | "file",
    private fh: FileHandle,
    private position: number,
  ) {}

  static async open(file: string, schema: Schema, format: "stream" | "file" = "stream"): Promise<ArrowShardWriter> {
    await mkdir(path.dirname(file), { recursive: true });
    const fh = await open(file, "w");
    const w = new ArrowShardWriter(file, schema, format, fh, 0);
    if (format === "file") await w.put(new Uint8Array([0x41, 0x52, 0x52, 0x4f, 0x57, 0x31, 0, 0])); // "ARROW1" + pad
    await w.put(encodeMessages(rowsToBatch(schema, [])).schema);
    return w;
  }

  /** Bytes written so far. */
  get bytes(): number {
    return this.position;
  }

  async writeRows(rows: Row[]): Promise<void> {
    if (rows.length) await this.writeBatch(rowsToBatch(this.schema, rows));
  }

  async writeBatch(batch: RecordBatch): Promise<void> {
    const { batch: msg, metaLength } = encodeMessages(batch);
    this.blocks.push(new FileBlock(metaLength, msg.length - metaLength, this.position));
    await this.put(msg);
    this.rows += batch.numRows;
    this.batches++;
  }

  async close(): Promise<ShardWriteResult> {
    await this.put(EOS);
    if (this.format === "file") {
      const footer = Footer.encode(new Footer(this.schema, MetadataVersion.V5, this.blocks, []));
      const len = new Uint8Array(4);
      new DataView(len.buffer).setInt32(0, footer.length, true);
      await this.put(footer);
      await this.put(len);
      await this.put(new TextEncoder().encode("ARROW1"));
    }
    await this.fh.close();
    return { file: this.file, rows: this.rows, batches: this.batches, bytes: this.position };
  }

  private async put(bytes: Uint8Array): Promise<void> {
    let off = 0;
    while (off < bytes.length) {
      const { bytesWritten } = await this.fh.write(bytes, off, bytes.length - off, this.position + off);
      off += bytesWritten;
    }
    this.position += bytes.length;
  }
}

/** The schema message and the record-batch message of `batch`, as apache-arrow's stream writer frames them. */
function encodeMessages(batch: RecordBatch): { schema: Uint8Array; batch: Uint8Array; metaLength: number } {
  const all = RecordBatchStreamWriter.writeAll([batch]).toUint8Array(true); // schema, batch, EOS
  const dv = new DataView(all.buffer, all.byteOffset, all.byteLength);
  const schemaEnd = 8 + dv.getInt32(4, true);
  const metaLength = 8 + dv.getInt32(schemaEnd + 4, true);
  return { schema: all.slice(0, schemaEnd), batch: all.slice(schemaEnd, all.length - 8), metaLength };
}

/** Writes `rows` to one Arrow file (IPC stream format unless `format: "file"`). */
export async function writeArrowFile(
  file: string,
  schemaOrFeatures: Schema | HfFeatures,
  rows: RowSource,
  opts: { format?: "stream" | "file"; batchRows?: number } = {},
): Promise<ShardWriteResult> {
  const schema = schemaOrFeatures instanceof Schema ? schemaOrFeatures : featuresToSchema(schemaOrFeatures);
  const batchRows = opts.batchRows ?? (schemaOrFeatures instanceof Schema ? 1000 : defaultBatchRows(schemaOrFeatures));
  const w = await ArrowShardWriter.open(file, schema, opts.format ?? "stream");
  let buf: Row[] = [];
  for await (const r of rows) {
    buf.push(r);
    if (buf.length >= batchRows) {
      await w.writeRows(buf);
      buf = [];
    }
  }
  await w.writeRows(buf);
  return w.close();
}

// ---------------------------------------------------------------- save_to_disk folders

export interface DatasetFolderOptions {
  /** Start a new shard once the current one reaches this many bytes (datasets' max_shard_size; default 500 MB). */
  shardBytes?: number;
  batchRows?: number;
  /** Split name recorded in state.json (`_split`). */
  split?: string;
  /** Replace an existing save_to_disk folder. */
  overwrite?: boolean;
}

export interface DatasetFolderResult {
  dir: string;
  rows: number;
  shards: ShardWriteResult[];
}

/** Writes a `Dataset.save_to_disk` folder from a stream of rows. */
export async function writeDatasetFolder(
  dir: string,
  features: HfFeatures,
  rows: RowSource,
  opts: DatasetFolderOptions = {},
): Promise<DatasetFolderResult> {
  await prepareFolder(dir, opts.overwrite ?? false);
  const schema = featuresToSchema(features);
  const batchRows = opts.batchRows ?? defaultBatchRows(features);
  const shardBytes = opts.shardBytes ?? 500e6;
  const partial = (i: number) => path.join(dir, `.data-${String(i).padStart(5, "0")}.arrow.partial`);
  const done: ShardWriteResult[] = [];
  let w = await ArrowShardWriter.open(partial(0), schema);
  let buf: Row[] = [];
  const flush = async () => {
    await w.writeRows(buf);
    buf = [];
    if (w.bytes >= shardBytes) {
      done.push(await w.close());
      w = await ArrowShardWriter.open(partial(done.length), schema);
    }
  };
  for await (const r of rows) {
    buf.push(r);
    if (buf.length >= batchRows) await flush();
  }
  await w.writeRows(buf);
  const last = await w.close();
  if (last.rows > 0 || done.length === 0) done.push(last);
  else await rm(last.file);
  const n = done.length;
  const shards: ShardWriteResult[] = [];
  for (let i = 0; i < n; i++) {
    const name = `data-${String(i).padStart(5, "0")}-of-${String(n).padStart(5, "0")}.arrow`;
    await rename(done[i]!.file, path.join(dir, name));
    shards.push({ ...done[i]!, file: path.join(dir, name) });
  }
  const total = shards.reduce((a, s) => a + s.rows, 0);
  const fingerprint = createHash("sha256")
    .update(JSON.stringify(features))
    .update(shards.map((s) => `${s.rows}:${s.bytes}`).join(","))
    .digest("hex")
    .slice(0, 16);
  const state = {
    _data_files: shards.map((s) => ({ filename: path.basename(s.file) })),
    _fingerprint: fingerprint,
    _format_columns: null,
    _format_kwargs: {},
    _format_type: null,
    _output_all_columns: false,
    _split: opts.split ?? null,
  };
  const info: Record<string, unknown> = { citation: "", description: "", features, homepage: "", license: "" };
  if (opts.split) {
    const numBytes = shards.reduce((a, s) => a + s.bytes, 0);
    info.splits = { [opts.split]: { name: opts.split, num_bytes: numBytes, num_examples: total, dataset_name: null } };
  }
  await writeFile(path.join(dir, STATE_JSON), JSON.stringify(state, null, 2));
  await writeFile(path.join(dir, DATASET_INFO_JSON), JSON.stringify(info, null, 2));
  return { dir, rows: total, shards };
}

/** Writes a `DatasetDict.save_to_disk` folder: one Dataset folder per split plus dataset_dict.json. */
export async function writeDatasetDict(
  dir: string,
  features: HfFeatures,
  splits: Record<string, RowSource>,
  opts: Omit<DatasetFolderOptions, "split"> = {},
): Promise<Record<string, DatasetFolderResult>> {
  await mkdir(dir, { recursive: true });
  const out: Record<string, DatasetFolderResult> = {};
  for (const [name, rows] of Object.entries(splits)) {
    out[name] = await writeDatasetFolder(path.join(dir, name), features, rows, { ...opts, split: name });
  }
  const names = Object.keys(splits).map((s) => JSON.stringify(s)).join(", ");
  await writeFile(path.join(dir, DATASET_DICT_JSON), `{"splits": [${names}]}`);
  return out;
}

async function prepareFolder(dir: string, overwrite: boolean): Promise<void> {
  await mkdir(dir, { recursive: true });
  const names = await readdir(dir);
  const ours = names.filter((n) => /^data-\d{5}-of-\d{5}\.arrow$|^\.data-\d{5}\.arrow\.partial$/.test(n) ||
    n === STATE_JSON || n === DATASET_INFO_JSON);
  if (ours.length && !overwrite) {
    throw new DataError("folder already holds a saved dataset (pass overwrite to replace it)", { file: dir });
  }
  for (const n of ours) await rm(path.join(dir, n));
}
