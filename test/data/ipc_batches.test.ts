// Pooled record-batch reads (data/ipc_batches.ts) and their users in ShardSet: one buffer reused across batches, rows
// that outlive their batch (streamed and random access, concurrent calls included) keep their own bytes, and the
// batch views really are into the reused buffer (so the copies are what keeps the rows right).
import { test } from "node:test";
import assert from "node:assert/strict";
import { open } from "node:fs/promises";
import path from "node:path";
import { openShards } from "../../data/arrow_shards.js";
import { batchRowToPlain } from "../../data/arrow_values.js";
import { BatchBuffer, DictionaryMessages, readRecordBatch } from "../../data/ipc_batches.js";
import { indexIpcFile } from "../../data/ipc_index.js";
import { binaryPayload, tmpDir, writeBinaryShard } from "./make_shards.js";

const ROW_BYTES = 4096;

/** True when row `r` of the generated shard has its own index and payload. */
function rowOk(row: Record<string, unknown>, r: number): boolean {
  const p = row.payload as Uint8Array;
  const want = binaryPayload(r, ROW_BYTES);
  return row.idx === r && p.length === ROW_BYTES && Buffer.from(p).equals(Buffer.from(want));
}

test("one buffer serves every batch; rows converted from an earlier batch keep their bytes", async () => {
  const { dir, remove } = await tmpDir("pool");
  try {
    const file = path.join(dir, "b.arrow");
    await writeBinaryShard(file, 50, ROW_BYTES, 10); // 5 record batches of 10 rows
    const idx = await indexIpcFile(file);
    const fh = await open(file, "r");
    try {
      const pool = new BatchBuffer();
      const dicts = new DictionaryMessages(idx);
      const kept: Record<string, unknown>[] = [];
      let firstBuffer: ArrayBufferLike | undefined;
      let view: Uint8Array | undefined; // a raw view of batch 0, row 0: overwritten by the next read
      for (let b = 0; b < 5; b++) {
        const batch = await readRecordBatch(fh, idx, b, dicts, pool);
        if (b === 0) view = batch.getChild("payload")!.get(0)!;
        assert.equal(new DataView(view!.buffer, view!.byteOffset).getUint32(0, true), b * 10, "the raw view now shows this batch");
        const values = batch.getChild("payload")!.data[0]!.values as Uint8Array;
        firstBuffer ??= values.buffer;
        assert.equal(values.buffer, firstBuffer, `batch ${b} is a view into the same buffer`);
        for (let i = 0; i < batch.numRows; i++) kept.push(batchRowToPlain(batch, i, { file, batch: b, row: b * 10 + i }));
      }
      assert.equal(pool.capacity, Math.max(...Array.from(idx.batchEnd, (e, b) => e - idx.batchStart[b]!)));
      assert.equal(kept.length, 50);
      kept.forEach((row, r) => assert.ok(rowOk(row, r), `row ${r} intact after later batches were read`));
    } finally {
      await fh.close();
    }
  } finally {
    await remove();
  }
});

test("ShardSet: streamed rows and concurrent random reads stay right after the buffer moves on", async () => {
  const { dir, remove } = await tmpDir("pool2");
  try {
    const file = path.join(dir, "b.arrow");
    await writeBinaryShard(file, 120, ROW_BYTES, 8); // 15 record batches
    const set = await openShards(file);
    const rows: Record<string, unknown>[] = [];
    for await (const { row } of set.rows()) rows.push(row);
    assert.equal(rows.length, 120);
    rows.forEach((row, r) => assert.ok(rowOk(row, r), `streamed row ${r}`));
    // from a cursor mid-batch
    const tail: Record<string, unknown>[] = [];
    for await (const { row } of set.rows({ from: { shard: 0, row: 61 } })) tail.push(row);
    tail.forEach((row, k) => assert.ok(rowOk(row, 61 + k), `row ${61 + k} from the cursor`));
    // several readRows calls in flight at once, each over several batches, in a scrambled order
    const asks = [[117, 3, 64], [9, 8, 7, 100], [55], [0, 119, 40, 41]];
    const got = await Promise.all(asks.map((a) => set.readRows(0, a)));
    got.forEach((list, j) => {
      assert.deepEqual(list.map((x) => x.where.row), asks[j]);
      list.forEach((x) => assert.ok(rowOk(x.row, x.where.row), `random row ${x.where.row}`));
    });
    const b3 = await set.readBatch(0, 3);
    b3.forEach((x, i) => assert.ok(rowOk(x.row, 24 + i)));
  } finally {
    await remove();
  }
});
