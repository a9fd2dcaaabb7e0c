// Arrow shards: the real datasets save_to_disk folders, shards written in IPC stream and file format, globs and
// lists, cursors and random access, copied bytes, bounded memory on a 300 MB shard, and corrupt shards.
import { test } from "node:test";
import assert from "node:assert/strict";
import { createReadStream, readFileSync } from "node:fs";
import { mkdir, readFile, stat, truncate, writeFile } from "node:fs/promises";
import path from "node:path";
import { Dictionary, Int32, RecordBatch, RecordBatchReader, RecordBatchStreamWriter, Table, Utf8, vectorFromArray } from "apache-arrow";
import { DataError } from "../../core/errors.js";
import { cursorAfter, openShards } from "../../data/arrow_shards.js";
import type { ShardRow } from "../../data/arrow_shards.js";
import { batchRowToPlain } from "../../data/arrow_values.js";
import { indexIpcFile } from "../../data/ipc_index.js";
import { writeArrowFile, writeDatasetDict, writeDatasetFolder } from "../../data/write_shards.js";
import { binaryPayload, LLAVA_FEATURES, realDatasets, realImages, tmpDir, VQAV2_FEATURES, writeBinaryShard } from "./make_shards.js";

async function all(set: { rows(o?: object): AsyncGenerator<ShardRow> }, opts = {}): Promise<ShardRow[]> {
  const out: ShardRow[] = [];
  for await (const r of set.rows(opts)) out.push(r);
  return out;
}

/** Asserts `fn` rejects with a DataError whose message names every given piece. */
async function rejectsNaming(fn: () => Promise<unknown>, parts: (string | RegExp)[]): Promise<DataError> {
  let err: unknown;
  try {
    await fn();
  } catch (e) {
    err = e;
  }
  assert.ok(err instanceof DataError, `expected a DataError, got ${String(err)}`);
  for (const p of parts) {
    if (typeof p === "string") assert.ok(err.message.includes(p), `"${err.message}" should name ${p}`);
    else assert.match(err.message, p);
  }
  return err;
}

test("real vqa_medical_validation: 5577 rows in 6 record batches, column types, first row from the raw bytes", async () => {
  const dir = realDatasets("vqa_medical_validation");
  const set = await openShards(dir);
  assert.equal(set.shards.length, 1);
  assert.equal(set.shards[0]!.rows, 5577);
  assert.equal(set.shards[0]!.batches, 6);
  assert.equal(set.shards[0]!.format, "stream");
  assert.deepEqual(
    set.schema.columns.map((c) => `${c.name}:${c.type}`),
    ["image:List<Utf8>", "question:Utf8", "answer:Utf8", "task_type:Utf8", "modality:Utf8", "dataset:Utf8"],
  );
  // features from the schema metadata agree with dataset_info.json (second route)
  const info = JSON.parse(readFileSync(path.join(dir, "dataset_info.json"), "utf8")) as { features: unknown };
  assert.deepEqual(set.schema.features, info.features);
  const rows = await all(set);
  assert.equal(rows.length, 5577);
  assert.deepEqual(new Set(rows.map((r) => r.where.batch)), new Set([0, 1, 2, 3, 4, 5]));
  assert.deepEqual(rows.map((r) => r.where.row), Array.from({ length: 5577 }, (_, i) => i));
  const first = rows[0]!.row;
  const raw = readFileSync(set.shards[0]!.file);
  const img0 = (first.image as string[])[0]!;
  assert.equal(img0, "data/validation-public/Dermatology/bcn20000/imagesVal/BCN20000_03396-1.jpg");
  // the first image path in the file's bytes is the first row's first image
  assert.equal(raw.indexOf("data/validation-public/"), raw.indexOf(img0));
  assert.ok(raw.indexOf(first.question as string) > 0);
  assert.equal(typeof first.answer, "string");
});

test("real ocr_datasetdict: DatasetDict splits train 20 / validation 2; no split names the splits", async () => {
  const dir = realDatasets("ocr_datasetdict");
  const train = await openShards(dir, { split: "train" });
  const val = await openShards(dir, { split: "validation" });
  assert.equal(train.totalRows, 20);
  assert.equal(val.totalRows, 2);
  assert.deepEqual(train.schema.columns.map((c) => `${c.name}:${c.type}`), ["image_path:Utf8", "text:Utf8"]);
  const rows = await all(train);
  assert.equal(rows.length, 20);
  assert.deepEqual(rows[0]!.row, { image_path: "/var/www/html/projetc/scripts/../dataset/train/imagen_1.jpg", text: "30" });
  const raw = readFileSync(path.join(dir, "train", "data-00000-of-00001.arrow"));
  assert.equal(raw.indexOf("/var/www"), raw.indexOf("/var/www/html/projetc/scripts/../dataset/train/imagen_1.jpg"));
  assert.equal((await all(val)).length, 2);
  await rejectsNaming(() => openShards(dir), ["dataset_dict.json", "train", "validation"]);
  await rejectsNaming(() => openShards(dir, { split: "test" }), ['no split "test"']);
});

test("real vla_instruct_val: 140 rows, string columns, first row from the raw bytes", async () => {
  const set = await openShards(realDatasets("vla_instruct_val"));
  assert.equal(set.totalRows, 140);
  assert.deepEqual(set.schema.columns.map((c) => `${c.name}:${c.type}`), ["instruction:Utf8", "output:Utf8"]);
  const rows = await all(set);
  assert.equal(rows.length, 140);
  const ins = rows[0]!.row.instruction as string;
  assert.ok(ins.startsWith("[SCENE] Construction site view from wheel loader.\n[DETECTIONS]\n  1. mound (conf="));
  const raw = readFileSync(set.shards[0]!.file);
  assert.equal(raw.indexOf("[SCENE]"), raw.indexOf(ins));
});

test("cursor resume and random access agree with the sequential pass", async () => {
  const set = await openShards(realDatasets("vqa_medical_validation"));
  const rows = await all(set);
  const tail = await all(set, { from: cursorAfter(rows[2499]!.where) });
  assert.equal(tail.length, 5577 - 2500);
  assert.deepEqual(tail[0], rows[2500]);
  assert.deepEqual(tail[tail.length - 1], rows[5576]);
  const pick = [5576, 0, 999, 1000, 3333, 1000];
  const got = await set.readRows(0, pick);
  assert.deepEqual(got.map((r) => r.where.row), pick);
  for (const [k, r] of got.entries()) assert.deepEqual(r.row, rows[pick[k]!]!.row);
  const b3 = await set.readBatch(0, 3);
  assert.equal(b3.length, (await set.index(0)).batchRows[3]);
  await rejectsNaming(() => set.readRows(0, [5577]), ["row 5577", "out of range"]);
});

test("shards written in IPC stream and file format (Image struct of real bytes) read back, bytes copied", async () => {
  const { dir, remove } = await tmpDir("fmt");
  try {
    const imgs = realImages();
    const rows = Array.from({ length: 7 }, (_, i) => ({
      question_id: i === 6 ? 2 ** 40 + 1 : i,
      question: `q${i}?`,
      answers: [{ answer: `a${i}`, answer_confidence: "yes", answer_id: 1 }],
      image: i === 3 ? null : { bytes: imgs[i % 2]!.bytes, path: imgs[i % 2]!.name },
    }));
    for (const [format, name] of [["stream", "s.arrow"], ["file", "f.arrow"], ["file", "f.feather"]] as const) {
      const file = path.join(dir, name);
      await writeArrowFile(file, VQAV2_FEATURES, rows, { format, batchRows: 3 });
      const head = (await readFile(file)).subarray(0, 6).toString("latin1");
      assert.equal(head === "ARROW1", format === "file", `${name} magic`);
      const set = await openShards(file);
      assert.equal(set.shards[0]!.format, format);
      assert.equal(set.shards[0]!.batches, 3);
      assert.equal(set.schema.columns.find((c) => c.name === "image")!.type, "Struct<{bytes:Binary, path:Utf8}>");
      assert.deepEqual(set.schema.columns.find((c) => c.name === "image")!.feature, { _type: "Image" });
      const got = await all(set);
      assert.equal(got.length, 7);
      for (const [i, { row }] of got.entries()) {
        assert.equal(row.question_id, rows[i]!.question_id);
        assert.deepEqual(row.answers, rows[i]!.answers);
        if (i === 3) assert.equal(row.image, null);
        else {
          const im = row.image as { bytes: Uint8Array; path: string };
          assert.equal(im.path, imgs[i % 2]!.name);
          assert.ok(Buffer.from(im.bytes).equals(Buffer.from(imgs[i % 2]!.bytes)), `${name} row ${i} image bytes`);
          assert.equal(im.bytes.byteOffset, 0);
          assert.equal(im.bytes.buffer.byteLength, imgs[i % 2]!.bytes.length, "image bytes own their buffer");
        }
      }
      // a cursor inside the second batch, then random access
      const tail = await all(set, { from: { shard: 0, row: 4 } });
      assert.deepEqual(tail.map((r) => r.where), [4, 5, 6].map((r) => ({ shard: 0, file: set.shards[0]!.file, batch: Math.floor(r / 3), row: r })));
      assert.deepEqual((await set.readRows(0, [5]))[0]!.row, got[5]!.row);
    }
  } finally {
    await remove();
  }
});

test("binary values are copied: mutating the source batch after reading leaves the row unchanged", async () => {
  const { dir, remove } = await tmpDir("copy");
  try {
    const img = realImages()[0]!;
    const file = path.join(dir, "one.arrow");
    await writeArrowFile(file, LLAVA_FEATURES, [{ id: "x", image: { bytes: img.bytes, path: img.name }, conversations: [] }]);
    const reader = await RecordBatchReader.from(createReadStream(file)); // Buffer chunks, as openShards reads
    for await (const batch of reader) {
      const row = batchRowToPlain(batch, 0, { file, batch: 0, row: 0 });
      const bytes = (row.image as { bytes: Uint8Array }).bytes;
      const view = batch.getChild("image")!.get(0)!.bytes as Uint8Array;
      assert.equal(view[0], 0xff);
      view.fill(0); // mutate the batch's buffer
      assert.equal((batch.getChild("image")!.get(0)!.bytes as Uint8Array)[0], 0, "the batch buffer did change");
      assert.ok(Buffer.from(bytes).equals(Buffer.from(img.bytes)), "the row kept its own copy");
    }
  } finally {
    await remove();
  }
});

test("glob, folder and list inputs; HF folders written by writeDatasetFolder / writeDatasetDict", async () => {
  const { dir, remove } = await tmpDir("glob");
  try {
    const feat = { n: { dtype: "int32", _type: "Value" }, s: { dtype: "string", _type: "Value" } };
    const mk = (from: number, count: number) => Array.from({ length: count }, (_, i) => ({ n: from + i, s: `r${from + i}` }));
    await writeArrowFile(path.join(dir, "a", "part-000.arrow"), feat, mk(0, 5));
    await writeArrowFile(path.join(dir, "a", "part-001.arrow"), feat, mk(5, 3));
    await writeArrowFile(path.join(dir, "a", "deep", "part-002.arrow"), feat, mk(8, 4));
    await writeFile(path.join(dir, "a", "notes.txt"), "not a shard");
    const nums = async (spec: string | string[]) => (await all(await openShards(spec))).map((r) => r.row.n);
    assert.deepEqual(await nums(path.join(dir, "a", "*.arrow")), [0, 1, 2, 3, 4, 5, 6, 7]);
    assert.deepEqual(await nums(path.join(dir, "a", "**", "*.arrow")), [8, 9, 10, 11, 0, 1, 2, 3, 4, 5, 6, 7]); // sorted paths
    assert.deepEqual(await nums(path.join(dir, "a", "part-00{0,2}.arrow")), [0, 1, 2, 3, 4]);
    assert.deepEqual(await nums(path.join(dir, "a")), [0, 1, 2, 3, 4, 5, 6, 7]); // a folder of shards
    const list = [path.join(dir, "a", "deep", "part-002.arrow"), path.join(dir, "a", "part-000.arrow")];
    const set = await openShards(list);
    assert.deepEqual(set.shards.map((s) => s.rows), [4, 5]);
    const rows = await all(set, { from: { shard: 1, row: 3 } });
    assert.deepEqual(rows.map((r) => [r.where.shard, r.where.row, r.row.n]), [[1, 3, 3], [1, 4, 4]]);
    await rejectsNaming(() => openShards(path.join(dir, "a", "*.parquet")), ["no Arrow files", "*.parquet"]);
    await rejectsNaming(() => openShards(path.join(dir, "nope.arrow")), ["nope.arrow", "no such"]);

    // a shard with another schema in a list
    await writeArrowFile(path.join(dir, "other.arrow"), { n: { dtype: "string", _type: "Value" } }, [{ n: "x" }]);
    await rejectsNaming(() => openShards([list[1]!, path.join(dir, "other.arrow")]), ["other.arrow", 'column "n"', "Utf8"]);

    // save_to_disk folders: shard rollover by bytes, DatasetDict with splits
    const ds = path.join(dir, "ds");
    const res = await writeDatasetFolder(ds, feat, mk(0, 2500), { shardBytes: 20_000, batchRows: 500 });
    assert.ok(res.shards.length >= 2);
    assert.ok(res.shards.every((s, i) => s.file.endsWith(`data-${String(i).padStart(5, "0")}-of-${String(res.shards.length).padStart(5, "0")}.arrow`)));
    const state = JSON.parse(await readFile(path.join(ds, "state.json"), "utf8")) as { _data_files: { filename: string }[] };
    assert.deepEqual(state._data_files.map((f) => path.join(ds, f.filename)), res.shards.map((s) => s.file));
    const dsSet = await openShards(ds);
    assert.equal(dsSet.totalRows, 2500);
    assert.deepEqual((await all(dsSet)).map((r) => r.row.n), Array.from({ length: 2500 }, (_, i) => i));
    await assert.rejects(writeDatasetFolder(ds, feat, mk(0, 1)), /already holds/);
    const dd = path.join(dir, "dd");
    await writeDatasetDict(dd, feat, { train: mk(0, 3), test: mk(100, 2) });
    assert.equal(await readFile(path.join(dd, "dataset_dict.json"), "utf8"), '{"splits": ["train", "test"]}');
    assert.deepEqual((await all(await openShards(dd, { split: "test" }))).map((r) => r.row.n), [100, 101]);
    // dataset_info.json's num_examples is checked against the shards' row count
    const infoFile = path.join(dd, "test", "dataset_info.json");
    const info = JSON.parse(await readFile(infoFile, "utf8")) as { splits: { test: { num_examples: number } } };
    assert.equal(info.splits.test.num_examples, 2);
    info.splits.test.num_examples = 3;
    await writeFile(infoFile, JSON.stringify(info));
    await rejectsNaming(() => openShards(dd, { split: "test" }), ["dataset_info.json", "3 rows", "hold 2"]);
  } finally {
    await remove();
  }
});

test("a 300 MB shard streams with RSS growth under 150 MB", async () => {
  const { dir, remove } = await tmpDir("big");
  try {
    const file = path.join(dir, "big.arrow");
    const rowBytes = 64 * 1024;
    const nRows = 4800; // 300 MiB of binary in 48 record batches of 100 rows
    const written = await writeBinaryShard(file, nRows, rowBytes);
    assert.ok((await stat(file)).size > 300 * 1024 * 1024);
    assert.equal(written.batches, 48);
    const set = await openShards(file);
    assert.equal(set.totalRows, nRows);
    const before = process.memoryUsage().rss;
    let peak = before;
    let n = 0;
    let ok = true;
    for await (const { row, where } of set.rows()) {
      const p = row.payload as Uint8Array;
      const want = binaryPayload(where.row, 16);
      ok &&= row.idx === where.row && p.length === rowBytes && new DataView(p.buffer, p.byteOffset).getUint32(0, true) === where.row &&
        p[rowBytes - 1] === want[15];
      n++;
      if (n % 50 === 0) peak = Math.max(peak, process.memoryUsage().rss);
    }
    assert.equal(n, nRows);
    assert.ok(ok, "every row has its own index and payload");
    const growthMiB = (peak - before) / 2 ** 20;
    assert.ok(growthMiB < 150, `RSS grew ${growthMiB.toFixed(0)} MiB while streaming`);
  } finally {
    await remove();
  }
});

test("corrupt and truncated shards: DataError naming file, batch and row; skip mode keeps the readable prefix", async () => {
  const { dir, remove } = await tmpDir("bad");
  try {
    const feat = { n: { dtype: "int64", _type: "Value" }, s: { dtype: "string", _type: "Value" } };
    const rows = Array.from({ length: 30 }, (_, i) => ({ n: i, s: "x".repeat(100) + i }));
    const good = path.join(dir, "good.arrow");
    await writeArrowFile(good, feat, rows, { batchRows: 10 });
    const idx = await indexIpcFile(good);
    assert.deepEqual(Array.from(idx.batchRows), [10, 10, 10]);

    // truncated in the body of batch 1
    const cut = path.join(dir, "cut.arrow");
    await writeFile(cut, (await readFile(good)).subarray(0, idx.batchEnd[1]! - 50));
    await rejectsNaming(() => openShards(cut), ["cut.arrow", "batch 1", "row 10", "truncated", "10 rows lost"]);
    const skip = await openShards([cut, good], { onError: "skip" });
    assert.deepEqual(skip.shards.map((s) => s.rows), [10, 30]);
    const got = await all(skip);
    assert.equal(got.length, 40);
    assert.equal(skip.report.rows, 10);
    assert.equal(skip.report.byReason.get("corrupt shard"), 10);
    assert.match(skip.report.first[0]!.message, /cut\.arrow, batch 1, row 10/);
    assert.match(skip.report.summary(), /skipped 10 rows/);

    // truncated inside a message header, and a file-format shard without its footer
    const cut2 = path.join(dir, "cut2.arrow");
    await writeFile(cut2, (await readFile(good)).subarray(0, idx.batchStart[2]! + 6));
    await rejectsNaming(() => openShards(cut2), ["cut2.arrow", "batch 2", "row 20", "truncated"]);
    const ff = path.join(dir, "ff.arrow");
    await writeArrowFile(ff, feat, rows, { format: "file", batchRows: 10 });
    await truncate(ff, (await stat(ff)).size - 40);
    await rejectsNaming(() => openShards(ff), ["ff.arrow", "footer"]);

    // garbage in batch 2's header, not Arrow at all, empty file
    const bent = path.join(dir, "bent.arrow");
    const bytes = new Uint8Array(await readFile(good));
    bytes.fill(0x7f, idx.batchStart[2]! + 8, idx.batchStart[2]! + 40);
    await writeFile(bent, bytes);
    await rejectsNaming(() => openShards(bent), ["bent.arrow", "batch 2", "row 20", "corrupt"]);
    const json = path.join(dir, "json.arrow");
    await writeFile(json, JSON.stringify({ hello: "world" }));
    await rejectsNaming(() => openShards(json), ["json.arrow"]);
    const empty = path.join(dir, "empty.arrow");
    await writeFile(empty, "");
    await rejectsNaming(() => openShards(empty), ["empty.arrow", "empty"]);
    const skip2 = await openShards([json, good], { onError: "skip" });
    assert.deepEqual(skip2.shards.map((s) => s.rows), [0, 30]);
    assert.equal(skip2.report.unknownRows, 1);

    // damaged string offsets in batch 1's body: found by validation, not turned into wrong strings
    const raw = new Uint8Array(await readFile(good));
    const batches = [...RecordBatchReader.from(raw)];
    const offs = batches[1]!.getChild("s")!.data[0]!.valueOffsets as Int32Array;
    assert.equal(offs.buffer, raw.buffer, "offsets are a view into the file bytes");
    new Int32Array(raw.buffer, offs.byteOffset + 5 * 4, 1)[0] = 1 << 30;
    const body = path.join(dir, "body.arrow");
    await writeFile(body, raw);
    const bodySet = await openShards(body);
    await rejectsNaming(() => all(bodySet), ["body.arrow", "batch 1", "row 10", 'column "s"', "offsets"]);
    await rejectsNaming(() => bodySet.readRows(0, [12]), ["body.arrow", "batch 1", 'column "s"']);
    const bodySkip = await openShards(body, { onError: "skip" });
    assert.deepEqual((await all(bodySkip)).map((r) => r.row.n), [...Array(10).keys(), ...Array.from({ length: 10 }, (_, i) => 20 + i)]);
    assert.equal(bodySkip.report.rows, 10);
  } finally {
    await remove();
  }
});

test("Int64 beyond 2^53 is a DataError naming file, batch, row and column (skipped and counted in skip mode)", async () => {
  const { dir, remove } = await tmpDir("i64");
  try {
    const file = path.join(dir, "big_ints.arrow");
    const big = 2n ** 60n;
    await writeArrowFile(file, { id: { dtype: "int64", _type: "Value" } }, [{ id: 1 }, { id: 2 }, { id: big }, { id: -3 }], { batchRows: 2 });
    await rejectsNaming(async () => all(await openShards(file)), ["big_ints.arrow", "batch 1", "row 2", 'column "id"', String(big)]);
    const set = await openShards(file, { onError: "skip" });
    assert.deepEqual((await all(set)).map((r) => r.row.id), [1, 2, -3]);
    assert.equal(set.report.rows, 1);
    assert.equal(set.report.first[0]!.row, 2);
    assert.equal(set.report.first[0]!.column, "id");
  } finally {
    await remove();
  }
});

test("nested values: lists of structs, nulls inside lists, fixed-size lists", async () => {
  const { dir, remove } = await tmpDir("nest");
  try {
    const file = path.join(dir, "nest.arrow");
    const feat = {
      tags: { feature: { dtype: "string", _type: "Value" }, _type: "List" },
      box: { feature: { dtype: "float32", _type: "Value" }, length: 4, _type: "Sequence" },
      meta: { a: { dtype: "int32", _type: "Value" }, b: { dtype: "bool", _type: "Value" } },
    };
    const rows = [
      { tags: ["a", null, "c"], box: [0, 0.5, 1, 2], meta: { a: 1, b: true } },
      { tags: null, box: null, meta: null },
      { tags: [], box: [1, 2, 3, 4], meta: { a: null, b: false } },
    ];
    await mkdir(dir, { recursive: true });
    await writeArrowFile(file, feat, rows);
    const set = await openShards(file);
    assert.deepEqual(set.schema.columns.map((c) => c.type), ["List<Utf8>", "FixedSizeList[4]<Float32>", "Struct<{a:Int32, b:Bool}>"]);
    assert.deepEqual((await all(set)).map((r) => r.row), rows);
  } finally {
    await remove();
  }
});

test("dictionary-encoded columns: dictionaries replayed for cursors and random access in later batches", async () => {
  const { dir, remove } = await tmpDir("dict");
  try {
    const t = new Dictionary(new Utf8(), new Int32());
    const b1 = new RecordBatch({ c: vectorFromArray(["a", "b", "a"], t).data[0]! });
    const b2 = new RecordBatch({ c: vectorFromArray(["x", "y", "x", "z"], t).data[0]! });
    const file = path.join(dir, "dict.arrow");
    await writeFile(file, RecordBatchStreamWriter.writeAll(new Table([b1, b2])).toUint8Array(true));
    const set = await openShards(file);
    assert.equal(set.schema.columns[0]!.type, "Dictionary<Int32, Utf8>");
    assert.deepEqual((await all(set)).map((r) => r.row.c), ["a", "b", "a", "x", "y", "x", "z"]);
    assert.deepEqual((await all(set, { from: { shard: 0, row: 4 } })).map((r) => r.row.c), ["y", "x", "z"]);
    assert.deepEqual((await set.readRows(0, [6, 1])).map((r) => r.row.c), ["z", "b"]);
  } finally {
    await remove();
  }
});
