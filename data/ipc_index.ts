// Metadata pass over one Arrow IPC file (stream or file format): where each record batch lies and how many rows it
// holds, read from message headers (and the footer for the file format) with positioned reads, never the bodies.
// The index serves row counts, cursors (stream from batch k) and random access to one batch, and it finds truncated
// or corrupt shards before any training starts.
import type { FileHandle } from "node:fs/promises";
import { open } from "node:fs/promises";
import { DataType, Message, MessageHeader, Schema } from "apache-arrow";
import type { Field } from "apache-arrow";
import { Footer } from "apache-arrow/ipc/metadata/file";
import { DataError } from "../core/errors.js";

export type IpcFormat = "stream" | "file";

/** A problem found after the readable prefix of a shard (only kept when the caller asked to skip bad data). */
export interface IndexProblem {
  error: DataError;
  /** Rows lost to it, when a readable header said how many. */
  rows?: number;
}

export interface IpcIndex {
  file: string;
  format: IpcFormat;
  bytes: number;
  schema: Schema;
  /** The schema message framed as a stream message (copied from the file, or encoded from the file-format footer). */
  schemaMessage: Uint8Array;
  /** Byte ranges [start, end) of dictionary messages, in file order. */
  dictionaries: [number, number][];
  batchStart: Float64Array; // [nBatches] offset of each record-batch message
  batchEnd: Float64Array; // [nBatches] end (exclusive) of the message body
  batchRows: Float64Array; // [nBatches]
  firstRow: Float64Array; // [nBatches + 1] rows before each batch; last = total
  rows: number;
  problem?: IndexProblem;
}

const MAGIC = "ARROW1";
const MAX_METADATA = 256 * 1024 * 1024;
export const EOS = new Uint8Array([0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0]);

/**
 * Reads the headers of every message in `file`. Throws DataError (file, batch) on a truncated or corrupt shard unless
 * `keepPrefix`: then the readable batches before the fault are indexed and the fault is returned in `problem`.
 */
export async function indexIpcFile(file: string, opts: { keepPrefix?: boolean } = {}): Promise<IpcIndex> {
  let fh: FileHandle;
  try {
    fh = await open(file, "r");
  } catch (e) {
    throw new DataError(`cannot open shard: ${(e as Error).message}`, { file });
  }
  try {
    const bytes = (await fh.stat()).size;
    const head = await readAt(fh, 0, Math.min(8, bytes));
    const isFile = head.length >= 6 && new TextDecoder().decode(head.subarray(0, 6)) === MAGIC;
    return isFile ? await indexFileFormat(fh, file, bytes, opts) : await indexStreamFormat(fh, file, bytes, head, opts);
  } finally {
    await fh.close();
  }
}

async function indexStreamFormat(
  fh: FileHandle,
  file: string,
  bytes: number,
  head: Uint8Array,
  opts: { keepPrefix?: boolean },
): Promise<IpcIndex> {
  if (head.length >= 4 && new TextDecoder().decode(head.subarray(0, 4)) === "FEA1") {
    throw new DataError("Feather v1 file: not Arrow IPC; re-save it as Feather v2 / Arrow IPC", { file });
  }
  const b = new IndexBuilder(file, "stream", bytes);
  let pos = 0;
  let schema: Schema | undefined;
  let schemaMessage: Uint8Array | undefined;
  while (pos < bytes) {
    let msg: RawMessage | null;
    try {
      msg = await readMessage(fh, pos, bytes, { file, batch: b.count, row: b.total });
    } catch (e) {
      if (!schema || !opts.keepPrefix || !(e instanceof DataError)) throw e;
      b.problem = { error: e, rows: (e as DataError & { rows?: number }).rows };
      break;
    }
    if (!msg) break; // end-of-stream marker
    if (!schema) {
      if (msg.message.headerType !== MessageHeader.Schema) {
        throw new DataError("not an Arrow IPC stream or file: first message is not a schema", { file });
      }
      schema = msg.message.header() as Schema;
      schemaMessage = await readAt(fh, pos, msg.end - pos);
    } else {
      try {
        b.add(msg, pos, schema);
      } catch (e) {
        if (!opts.keepPrefix || !(e instanceof DataError)) throw e;
        b.problem = { error: e, rows: msg.rows };
        break;
      }
    }
    pos = msg.end;
  }
  if (!schema || !schemaMessage) throw new DataError("empty file: no Arrow schema message", { file });
  return b.finish(schema, schemaMessage);
}

async function indexFileFormat(fh: FileHandle, file: string, bytes: number, opts: { keepPrefix?: boolean }): Promise<IpcIndex> {
  const tail = bytes >= 16 ? await readAt(fh, bytes - 10, 10) : new Uint8Array(0);
  if (tail.length < 10 || new TextDecoder().decode(tail.subarray(4)) !== MAGIC) {
    throw new DataError("Arrow IPC file format without its footer (truncated file?)", { file });
  }
  const footerLen = new DataView(tail.buffer, tail.byteOffset).getInt32(0, true);
  const footerStart = bytes - 10 - footerLen;
  if (footerLen <= 0 || footerStart < 8) throw new DataError(`corrupt Arrow file footer (length ${footerLen})`, { file });
  let footer: InstanceType<typeof Footer>;
  try {
    footer = Footer.decode(await readAt(fh, footerStart, footerLen));
  } catch (e) {
    throw new DataError(`corrupt Arrow file footer: ${(e as Error).message}`, { file });
  }
  const schema = footer.schema;
  const b = new IndexBuilder(file, "file", bytes);
  for (const d of footer.dictionaryBatches()) {
    b.dictionaries.push([d.offset, d.offset + d.metaDataLength + d.bodyLength]);
  }
  let k = 0;
  for (const block of footer.recordBatches()) {
    try {
      const msg = await readMessage(fh, block.offset, footerStart, { file, batch: k, row: b.total });
      if (!msg) throw new DataError("end-of-stream marker where the footer lists a record batch", { file, batch: k, row: b.total });
      b.add(msg, block.offset, schema);
    } catch (e) {
      if (!opts.keepPrefix || !(e instanceof DataError)) throw e;
      b.problem = { error: e };
      break;
    }
    k++;
  }
  return b.finish(schema, frameMessage(Message.encode(Message.from(schema))));
}

interface RawMessage {
  message: Message;
  /** End of the message body (exclusive). */
  end: number;
  rows?: number;
}

/** Reads one encapsulated message header at `pos`; null at an end-of-stream marker. */
async function readMessage(
  fh: FileHandle,
  pos: number,
  limit: number,
  where: { file: string; batch: number; row: number },
): Promise<RawMessage | null> {
  const pre = await readAt(fh, pos, Math.min(8, limit - pos));
  if (pre.length < 4) throw new DataError(`truncated shard: ${limit - pos} stray bytes at offset ${pos}`, where);
  const dv = new DataView(pre.buffer, pre.byteOffset, pre.length);
  let metaLen = dv.getInt32(0, true);
  let prefix = 4;
  if (metaLen === -1) {
    if (pre.length < 8) throw new DataError(`truncated shard: message header cut at offset ${pos}`, where);
    metaLen = dv.getInt32(4, true);
    prefix = 8;
  }
  if (metaLen === 0) return null;
  if (metaLen < 0 || metaLen > MAX_METADATA) {
    throw new DataError(`corrupt shard: not an Arrow IPC message at offset ${pos} (metadata length ${metaLen})`, where);
  }
  if (pos + prefix + metaLen > limit) {
    throw new DataError(`truncated shard: message metadata at offset ${pos} runs past the end (${limit} bytes)`, where);
  }
  let message: Message;
  let header: unknown;
  try {
    message = Message.decode(await readAt(fh, pos + prefix, metaLen));
    header = message.header();
  } catch (e) {
    throw new DataError(`corrupt shard: undecodable message at offset ${pos}: ${(e as Error).message}`, where);
  }
  const type = message.headerType;
  if (type !== MessageHeader.Schema && type !== MessageHeader.RecordBatch && type !== MessageHeader.DictionaryBatch) {
    throw new DataError(`corrupt shard: unknown message type ${type} at offset ${pos}`, where);
  }
  const bodyLength = message.bodyLength;
  const rows = type === MessageHeader.RecordBatch ? (header as { length: number }).length : undefined;
  const end = pos + prefix + metaLen + bodyLength;
  if (!(bodyLength >= 0) || end > limit) {
    const err = new DataError(
      `truncated shard: record batch body of ${bodyLength} bytes at offset ${pos + prefix + metaLen} runs past the end ` +
        `(${limit} bytes)${rows !== undefined ? `; ${rows} rows lost` : ""}`,
      where,
    );
    throw Object.assign(err, { rows });
  }
  return { message, end, rows };
}

/** Collects batch ranges and validates each record-batch header against the schema. */
class IndexBuilder {
  starts: number[] = [];
  ends: number[] = [];
  rows: number[] = [];
  dictionaries: [number, number][] = [];
  problem?: IndexProblem;
  constructor(readonly file: string, readonly format: IpcFormat, readonly bytes: number) {}

  /** Rows in the batches indexed so far. */
  total = 0;

  get count(): number {
    return this.starts.length;
  }

  add(msg: RawMessage, pos: number, schema: Schema): void {
    const where = { file: this.file, batch: this.count, row: this.total };
    const type = msg.message.headerType;
    if (type === MessageHeader.Schema) throw new DataError("corrupt shard: a second schema message", where);
    if (type === MessageHeader.DictionaryBatch) {
      if (this.format === "stream") this.dictionaries.push([pos, msg.end]);
      return;
    }
    const rb = msg.message.header() as {
      length: number;
      nodes: unknown[];
      buffers: { offset: number; length: number }[];
      compression: unknown;
    };
    if (rb.compression) {
      throw new DataError("compressed record batches (LZ4/ZSTD) are not supported: re-save the shard uncompressed", where);
    }
    const nodes = schema.fields.reduce((n, f) => n + countNodes(f), 0);
    if (rb.nodes.length !== nodes) {
      throw new DataError(`corrupt shard: record batch has ${rb.nodes.length} field nodes, schema needs ${nodes}`, where);
    }
    const body = msg.message.bodyLength;
    for (const buf of rb.buffers) {
      if (buf.offset < 0 || buf.length < 0 || buf.offset + buf.length > body) {
        throw new DataError(`corrupt shard: buffer [${buf.offset}, +${buf.length}) outside the ${body}-byte body`, where);
      }
    }
    if (!(rb.length >= 0)) throw new DataError(`corrupt shard: record batch length ${rb.length}`, where);
    this.starts.push(pos);
    this.ends.push(msg.end);
    this.rows.push(rb.length);
    this.total += rb.length;
  }

  finish(schema: Schema, schemaMessage: Uint8Array): IpcIndex {
    const n = this.count;
    const firstRow = new Float64Array(n + 1);
    for (let i = 0; i < n; i++) firstRow[i + 1] = firstRow[i]! + this.rows[i]!;
    return {
      file: this.file,
      format: this.format,
      bytes: this.bytes,
      schema,
      schemaMessage,
      dictionaries: this.dictionaries,
      batchStart: Float64Array.from(this.starts),
      batchEnd: Float64Array.from(this.ends),
      batchRows: Float64Array.from(this.rows),
      firstRow,
      rows: firstRow[n]!,
      problem: this.problem,
    };
  }
}

/** Field nodes a field contributes to a record batch (itself plus nested children; dictionary fields count once). */
function countNodes(field: Field): number {
  const t = field.type as DataType;
  if (DataType.isDictionary(t)) return 1;
  return 1 + (t.children ?? []).reduce((n: number, c: Field) => n + countNodes(c), 0);
}

/** Frames encoded message metadata as a stream message: continuation, length, metadata, padding to 8 bytes. */
export function frameMessage(metadata: Uint8Array): Uint8Array {
  const padded = (metadata.length + 8 + 7) & ~7;
  const out = new Uint8Array(padded);
  const dv = new DataView(out.buffer);
  dv.setInt32(0, -1, true);
  dv.setInt32(4, padded - 8, true);
  out.set(metadata, 8);
  return out;
}

/** Positioned read of exactly `length` bytes (fewer only at end of file). */
export async function readAt(fh: FileHandle, position: number, length: number): Promise<Uint8Array> {
  const buf = new Uint8Array(Math.max(0, length));
  let got = 0;
  while (got < buf.length) {
    const { bytesRead } = await fh.read(buf, got, buf.length - got, position + got);
    if (bytesRead === 0) break;
    got += bytesRead;
  }
  return got === buf.length ? buf : buf.subarray(0, got);
}

/** The batch holding row `row` of the file (binary search over firstRow). */
export function batchOfRow(index: IpcIndex, row: number): number {
  let lo = 0;
  let hi = index.batchRows.length - 1;
  while (lo < hi) {
    const mid = (lo + hi + 1) >> 1;
    if (index.firstRow[mid]! <= row) lo = mid;
    else hi = mid - 1;
  }
  return lo;
}
