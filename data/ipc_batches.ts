// One Arrow record batch at a time from an indexed IPC file (ipc_index.ts): a positioned read of the batch message
// into a caller-owned buffer, then apache-arrow's reader over [schema, dictionaries so far, that message], which
// makes the column buffers views into the read buffer (no copy, no per-batch allocation).
//
// Ownership: a RecordBatch read into a BatchBuffer is valid until the next read into the same BatchBuffer. Whoever
// keeps a value past that must copy it (arrow_values.ts's batchRowToPlain does: binary is copied, strings decoded).
// Memory: a sequential pass holds one buffer of the largest batch message, reused, instead of a fresh body per
// batch plus the read chunks it was joined from (about 2x the batch size of garbage per batch, freed only when V8
// gets round to a full GC: hundreds of MB of RSS on 100-row batches of images).
import type { FileHandle } from "node:fs/promises";
import { RecordBatchReader } from "apache-arrow";
import type { RecordBatch } from "apache-arrow";
import type { IpcIndex } from "./ipc_index.js";
import { readAt } from "./ipc_index.js";

/** A reusable read buffer (grows to the largest message read, never shrinks). */
export class BatchBuffer {
  private buf = new Uint8Array(0);

  /** A view of `n` bytes at the start of the buffer (its old contents are invalid after this). */
  take(n: number): Uint8Array {
    if (this.buf.length < n) this.buf = new Uint8Array(n);
    return this.buf.subarray(0, n);
  }

  get capacity(): number {
    return this.buf.length;
  }
}

/** Dictionary messages of one shard read so far (file order), so each is read once per pass. */
export class DictionaryMessages {
  private readonly bytes: Uint8Array[] = [];

  constructor(private readonly idx: IpcIndex) {}

  /** The dictionary messages that precede byte `pos` of the file (all of them replayed: deltas need every one). */
  async before(fh: FileHandle, pos: number): Promise<Uint8Array[]> {
    const d = this.idx.dictionaries;
    while (this.bytes.length < d.length && d[this.bytes.length]![1] <= pos) {
      const [a, e] = d[this.bytes.length]!;
      this.bytes.push(await readAt(fh, a, e - a));
    }
    let n = 0;
    while (n < d.length && d[n]![1] <= pos) n++;
    return this.bytes.slice(0, n);
  }
}

/**
 * Record batch `b` of `idx` (file open as `fh`), read into `into` (a fresh buffer when undefined). Throws (plain
 * Error or DataError) when the message is unreadable or of the wrong length; the caller names file, batch and row.
 */
export async function readRecordBatch(
  fh: FileHandle,
  idx: IpcIndex,
  b: number,
  dicts: DictionaryMessages,
  into?: BatchBuffer,
): Promise<RecordBatch> {
  const start = idx.batchStart[b]!;
  const n = idx.batchEnd[b]! - start;
  const dictionaries = idx.dictionaries.length > 0 ? await dicts.before(fh, start) : [];
  const message = into ? into.take(n) : new Uint8Array(n);
  const got = await readInto(fh, message, start);
  if (got < n) throw new Error(`record batch message cut short: ${got} of ${n} bytes at offset ${start}`);
  // Each chunk is one whole message, so the reader hands out subarrays of `message` rather than joined copies.
  const reader = RecordBatchReader.from([idx.schemaMessage, ...dictionaries, message]);
  let data: RecordBatch | undefined;
  for (const batch of reader) {
    data = batch;
    break;
  }
  if (!data || data.numRows !== idx.batchRows[b]) {
    throw new Error(`record batch unreadable or of the wrong length (${data?.numRows ?? "none"} rows, header says ${idx.batchRows[b]})`);
  }
  return data;
}

/** Positioned read filling `buf` from `position`; the bytes read (fewer only at end of file). */
async function readInto(fh: FileHandle, buf: Uint8Array, position: number): Promise<number> {
  let got = 0;
  while (got < buf.length) {
    const { bytesRead } = await fh.read(buf, got, buf.length - got, position + got);
    if (bytesRead === 0) break;
    got += bytesRead;
  }
  return got;
}
