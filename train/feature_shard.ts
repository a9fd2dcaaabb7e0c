// One complete feature-cache shard opened for lookups (layout: train/feature_cache.ts). Opening reads the message
// headers once (data/ipc_index.ts: where each record batch lies) and keeps the file open; a lookup is then one
// synchronous positioned read of the row's record-batch message and a parse of its four columns straight from those
// bytes: no Arrow reader, no schema decode (the schema carries the shard's whole entry list), no file open, no await
// (an await mid-step hands the event loop to whatever else is queued, and the step pays for it).
import { close, open, readSync } from "node:fs";
import { promisify } from "node:util";
import { DataType, Message, MessageHeader } from "apache-arrow";
import type { Field } from "apache-arrow";
import { DataError } from "../core/errors.js";
import { batchOfRow, indexIpcFile, type IpcIndex } from "../data/ipc_index.js";

/** A stored row as read: views into the shard's read buffer, valid until the next read of any shard. */
export interface RowView {
  shape: [number, number]; // [T, C]
  /** float32 little-endian, row-major [T, C]. */
  tokens: Uint8Array;
  /** Parses the provenance JSON (undefined when null); call it before the next read. */
  provenance: () => number[][] | undefined;
}

// Columns in order and the Arrow buffers each contributes to a record batch (validity, offsets, data / values).
const COLUMNS = [
  { name: "image_sha256", ok: (t: DataType) => DataType.isUtf8(t) },
  { name: "tokens", ok: (t: DataType) => DataType.isBinary(t) },
  { name: "shape", ok: (t: DataType) => DataType.isList(t) && isInt32(t.children[0]?.type) },
  { name: "provenance", ok: (t: DataType) => DataType.isUtf8(t) },
] as const;
const NODES = 5; // sha, tokens, shape, shape.item, provenance
const BUFFERS = 13; // 3 + 3 + (2 + 2) + 3
const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/** A cache dropped without close() still gives its descriptors back, when it is collected. */
const unclosed = new FinalizationRegistry<number>((fd) => close(fd, () => undefined));

/** One read buffer for every shard: reads are synchronous, so no two are ever in flight. */
let scratch = new Uint8Array(0);

function isInt32(t: DataType | undefined): boolean {
  return t !== undefined && DataType.isInt(t) && t.bitWidth === 32 && t.isSigned;
}

export class FeatureShard {
  private fd: number;

  private constructor(readonly file: string, fd: number, private readonly idx: IpcIndex) {
    this.fd = fd;
    unclosed.register(this, fd, this);
  }

  /** Indexes `file`'s headers and checks its columns and row count (`rows`, from the entry list); DataError if not. */
  static async open(file: string, rows: number): Promise<FeatureShard> {
    const idx = await indexIpcFile(file);
    const fields = idx.schema.fields as Field[];
    const bad = COLUMNS.findIndex((c, j) => fields[j]?.name !== c.name || !c.ok(fields[j]!.type as DataType));
    if (bad >= 0 || fields.length !== COLUMNS.length) {
      throw new DataError(`columns ${fields.map((f) => `${f.name}: ${String(f.type)}`).join(", ")} are not the feature cache's`, { file });
    }
    if (idx.rows !== rows) throw new DataError(`shard holds ${idx.rows} rows, its entry list ${rows}`, { file });
    let fd: number;
    try {
      fd = await promisify(open)(file, "r");
    } catch (e) {
      throw new DataError(`cannot open shard: ${(e as Error).message}`, { file });
    }
    return new FeatureShard(file, fd, idx);
  }

  /** Row `row` (within the file), which the entry list says holds image `sha`; DataError naming file, row, column. */
  read(row: number, sha: string): RowView {
    const idx = this.idx;
    const fail = (msg: string, column?: string): never => {
      throw new DataError(msg, { file: this.file, row, column });
    };
    if (this.fd < 0) throw new Error(`feature shard ${this.file}: read after close()`);
    if (!(row >= 0 && row < idx.rows)) fail(`row ${row} out of range (shard has ${idx.rows} rows)`);
    const b = batchOfRow(idx, row);
    const i = row - idx.firstRow[b]!; // row within the record batch
    const start = idx.batchStart[b]!;
    const n = idx.batchEnd[b]! - start;
    if (scratch.length < n) scratch = new Uint8Array(Math.max(n, 2 * scratch.length));
    const buf = scratch;
    let got = 0;
    while (got < n) {
      const k = readSync(this.fd, buf, got, n - got, start + got);
      if (k === 0) fail(`record batch message cut short: ${got} of ${n} bytes at offset ${start}`);
      got += k;
    }
    const dv = new DataView(buf.buffer, buf.byteOffset, n);
    const cont = dv.getInt32(0, true) === -1;
    const metaLen = dv.getInt32(cont ? 4 : 0, true);
    const metaStart = cont ? 8 : 4;
    let header: { length: number; nodes: { nullCount: number }[]; buffers: { offset: number; length: number }[] };
    try {
      const msg = Message.decode(buf.subarray(metaStart, metaStart + metaLen));
      if (msg.headerType !== MessageHeader.RecordBatch) throw new Error(`message type ${msg.headerType}`);
      header = msg.header() as typeof header;
    } catch (e) {
      return fail(`corrupt record batch header: ${(e as Error).message}`);
    }
    if (header.nodes.length !== NODES || header.buffers.length !== BUFFERS) {
      fail(`record batch has ${header.nodes.length} field nodes and ${header.buffers.length} buffers, the layout needs ${NODES} and ${BUFFERS}`);
    }
    const body = metaStart + metaLen;
    // ipc_index checked every buffer region lies inside the body.
    const at = (k: number) => body + header.buffers[k]!.offset;
    const len = (k: number) => header.buffers[k]!.length;
    const valid = (node: number, k: number, j: number) =>
      header.nodes[node]!.nullCount === 0 || len(k) === 0 || ((buf[at(k) + (j >> 3)]! >> (j & 7)) & 1) === 1;
    /** [start, end) of value j of a variable-width column with offsets in buffer k, data in buffer k + 1. */
    const range = (k: number, j: number, column: string, limit: number): [number, number] => {
      if (len(k) < 4 * (j + 2)) fail(`offsets buffer too short for row ${j}`, column);
      const a = dv.getInt32(at(k) + 4 * j, true);
      const e = dv.getInt32(at(k) + 4 * j + 4, true);
      if (!(a >= 0 && e >= a && e <= limit)) fail(`corrupt offsets [${a}, ${e}) (data holds ${limit})`, column);
      return [a, e];
    };

    if (!valid(0, 0, i)) fail("image sha is null", "image_sha256");
    const [s0, s1] = range(1, i, "image_sha256", len(2));
    const shaAt = at(2) + s0;
    let same = s1 - s0 === sha.length;
    for (let j = 0; same && j < sha.length; j++) same = buf[shaAt + j] === sha.charCodeAt(j);
    if (!same) fail(`row holds ${new TextDecoder().decode(buf.subarray(shaAt, at(2) + s1))}, the shard's entry list says ${sha}`, "image_sha256");

    if (!valid(2, 6, i)) fail("shape is null", "shape");
    const [l0, l1] = range(7, i, "shape", Math.floor(len(9) / 4));
    const T = l1 - l0 === 2 && valid(3, 8, l0) ? dv.getInt32(at(9) + 4 * l0, true) : -1;
    const C = l1 - l0 === 2 && valid(3, 8, l0 + 1) ? dv.getInt32(at(9) + 4 * l0 + 4, true) : -1;
    if (!(T >= 1 && C >= 1)) fail(`shape must be [T, C] of positive integers`, "shape");

    if (!valid(1, 3, i)) fail("tokens are null", "tokens");
    const [t0, t1] = range(4, i, "tokens", len(5));
    if (t1 - t0 !== T * C * 4) fail(`tokens hold ${t1 - t0} bytes, shape [${T}, ${C}] needs ${T * C * 4}`, "tokens");

    let provenance: () => number[][] | undefined = () => undefined;
    if (valid(4, 10, i)) {
      const [p0, p1] = range(11, i, "provenance", len(12));
      const text = buf.subarray(at(12) + p0, at(12) + p1);
      provenance = () => {
        try {
          return JSON.parse(new TextDecoder().decode(text)) as number[][];
        } catch (e) {
          return fail(`provenance is not JSON: ${(e as Error).message}`, "provenance");
        }
      };
    }
    return { shape: [T, C], tokens: buf.subarray(at(5) + t0, at(5) + t1), provenance };
  }

  async close(): Promise<void> {
    const fd = this.fd;
    if (fd < 0) return;
    this.fd = -1;
    unclosed.unregister(this);
    await promisify(close)(fd).catch(() => undefined);
  }
}

/** Copies little-endian float32 bytes into `dest` (a plain copy on little-endian hosts). */
export function copyTokens(bytes: Uint8Array, dest: Float32Array): void {
  if (dest.length * 4 !== bytes.length) throw new RangeError(`copyTokens: ${bytes.length} bytes into ${dest.length} floats`);
  if (LITTLE_ENDIAN) {
    new Uint8Array(dest.buffer, dest.byteOffset, dest.byteLength).set(bytes);
    return;
  }
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  for (let j = 0; j < dest.length; j++) dest[j] = dv.getFloat32(4 * j, true);
}
