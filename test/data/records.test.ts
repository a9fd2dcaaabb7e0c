// Rows -> LLaVA conversation / VQA records: real LLaVA-Pretrain, POPE and TextVQA records round-tripped through
// Arrow shards, VQAv2-style answers and Image structs, the real vqa_medical folder, and every bad-row case.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import path from "node:path";
import { openShards } from "../../data/arrow_shards.js";
import type { ShardSet } from "../../data/arrow_shards.js";
import {
  checkMapping, conversationRecords, LLAVA_MAPPING, sniffImageFormat, toConversationRecord, vqaRecords, VQA_MAPPING,
} from "../../data/records.js";
import type { ConversationRecord, VqaRecord } from "../../data/records.js";
import { RowError } from "../../data/skip_report.js";
import { writeArrowFile, writeDatasetFolder } from "../../data/write_shards.js";
import { LLAVA_FEATURES, realDatasets, realDir, realImages, tmpDir, VQAV2_FEATURES } from "./make_shards.js";

const str = { dtype: "string", _type: "Value" };
const int64 = { dtype: "int64", _type: "Value" };

async function collect<T>(gen: AsyncGenerator<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const x of gen) out.push(x);
  return out;
}

function jsonl(file: string, n?: number): Record<string, unknown>[] {
  return readFileSync(file, "utf8").split("\n").filter(Boolean).slice(0, n).map((l) => JSON.parse(l) as Record<string, unknown>);
}

type LlavaJson = {
  id: string;
  image: string;
  conversations: { from: string; value: string }[];
};

test("real LLaVA-Pretrain records through a save_to_disk folder: ids, image paths, turns as in the JSON", async () => {
  const { dir, remove } = await tmpDir("llava");
  try {
    const recs = JSON.parse(readFileSync(realDir("llava_data", "blip_laion_cc_sbu_558k_first10.json"), "utf8")) as LlavaJson[];
    const features = { id: str, image: str, conversations: [{ from: str, value: str }] };
    await writeDatasetFolder(dir, features, recs, { batchRows: 4 });
    const set = await openShards(dir);
    const got = await collect(conversationRecords(set, LLAVA_MAPPING));
    assert.equal(got.length, 10);
    for (const [i, r] of got.entries()) {
      assert.equal(r.id, recs[i]!.id);
      assert.deepEqual(r.images, [{ kind: "path", path: recs[i]!.image }]);
      assert.deepEqual(r.conversations, recs[i]!.conversations);
      assert.deepEqual([r.where.batch, r.where.row], [Math.floor(i / 4), i]);
    }
    assert.ok(set.report.empty);
  } finally {
    await remove();
  }
});

test("LLaVA rows with an HF Image struct of real JPEG bytes, a text-only row, chat-style role/content turns", async () => {
  const { dir, remove } = await tmpDir("llava-img");
  try {
    const imgs = realImages();
    const file = path.join(dir, "llava.arrow");
    const rows = [
      { id: "a", image: { bytes: imgs[0]!.bytes, path: imgs[0]!.name }, conversations: [{ from: "human", value: "<image>\nWhat is this?" }, { from: "gpt", value: "A bus." }] },
      { id: "b", image: null, conversations: [{ from: "human", value: "Hi" }, { from: "gpt", value: "Hello" }] },
      { id: "c", image: imgs[1]!.bytes, conversations: [{ from: "human", value: "Describe.\n<image>" }, { from: "gpt", value: "A room." }] },
    ];
    await writeArrowFile(file, LLAVA_FEATURES, rows);
    const got = await collect(conversationRecords(await openShards(file), LLAVA_MAPPING));
    assert.deepEqual(got.map((r) => r.id), ["a", "b", "c"]);
    const im = got[0]!.images[0]!;
    assert.equal(im.kind, "bytes");
    if (im.kind === "bytes") {
      assert.equal(im.format, "jpeg");
      assert.equal(im.path, imgs[0]!.name);
      assert.ok(Buffer.from(im.bytes).equals(Buffer.from(imgs[0]!.bytes)));
    }
    assert.deepEqual(got[1]!.images, []);
    const im2 = got[2]!.images[0]!;
    assert.ok(im2.kind === "bytes" && im2.path === undefined && im2.bytes.length === imgs[1]!.bytes.length);

    const chat = toConversationRecord(
      { id: 7, conversations: [{ role: "user", content: "2+2?" }, { role: "assistant", content: "4" }] },
      { id: "id", conversations: "conversations" },
      { shard: 0, file: "mem", batch: 0, row: 0 },
    );
    assert.deepEqual(chat, { id: "7", images: [], conversations: [{ from: "user", value: "2+2?" }, { from: "assistant", value: "4" }], where: { shard: 0, file: "mem", batch: 0, row: 0 } });
  } finally {
    await remove();
  }
});

test("real POPE and TextVQA question records as VQA records", async () => {
  const { dir, remove } = await tmpDir("vqa");
  try {
    const pope = jsonl(realDir("eval", "pope", "coco_pope_random.json"), 50);
    const popeFile = path.join(dir, "pope.arrow");
    await writeArrowFile(popeFile, { question_id: int64, image: str, text: str, label: str }, pope, { batchRows: 16 });
    const recs = await collect(vqaRecords(await openShards(popeFile), { id: "question_id", question: "text", answers: "label", image: "image" }));
    assert.equal(recs.length, 50);
    for (const [i, r] of recs.entries()) {
      assert.equal(r.id, pope[i]!.question_id);
      assert.equal(r.question, pope[i]!.text);
      assert.deepEqual(r.answers, [pope[i]!.label]);
      assert.deepEqual(r.images, [{ kind: "path", path: pope[i]!.image }]);
    }
    assert.equal(recs[0]!.question, "Is there a snowboard in the image?");

    const tv = jsonl(realDir("eval", "textvqa", "llava_textvqa_val_v051_ocr.head30.jsonl"));
    const tvFile = path.join(dir, "textvqa.arrow");
    await writeArrowFile(tvFile, { question_id: str, image: str, text: str, category: str }, tv);
    const tvRecs = await collect(vqaRecords(await openShards(tvFile), { id: "question_id", question: "text", image: "image" }));
    assert.deepEqual(tvRecs.map((r) => r.id), tv.map((r) => r.question_id));
    assert.ok(tvRecs.every((r) => r.answers.length === 0));
    assert.ok(tvRecs[0]!.question.startsWith("What is the brand of this camera?\nReference OCR token: DAKOTA"));
  } finally {
    await remove();
  }
});

test("VQAv2-style rows: answers as list<struct<answer, ...>>, int64 question_id, Image struct bytes", async () => {
  const { dir, remove } = await tmpDir("vqav2");
  try {
    const img = realImages()[1]!;
    const file = path.join(dir, "vqav2.arrow");
    const answers = ["yes", "yes", "no", "yes", "yes", "yes", "yes", "yes", "yes", "yes"];
    await writeArrowFile(file, VQAV2_FEATURES, [
      { question_id: 262148000, question: "Is the sky blue?", image: { bytes: img.bytes, path: null },
        answers: answers.map((a, k) => ({ answer: a, answer_confidence: "yes", answer_id: k + 1 })) },
    ]);
    const [r] = await collect(vqaRecords(await openShards(file), VQA_MAPPING));
    assert.ok(r);
    assert.equal(r.id, 262148000);
    assert.deepEqual(r.answers, answers);
    assert.equal(r.images.length, 1);
    assert.ok(r.images[0]!.kind === "bytes" && r.images[0]!.format === "jpeg" && r.images[0]!.path === undefined);
  } finally {
    await remove();
  }
});

test("real vqa_medical_validation as VQA records: multi-image path lists, answer column, location ids", async () => {
  const set = await openShards(realDatasets("vqa_medical_validation"));
  const mapping = { image: "image", question: "question", answers: "answer" };
  const recs: VqaRecord[] = await collect(vqaRecords(set, mapping));
  assert.equal(recs.length, 5577);
  const rows = await collect(set.rows());
  for (const k of [0, 1, 2788, 5576]) {
    const row = rows[k]!.row;
    assert.deepEqual(recs[k]!.images.map((i) => (i.kind === "path" ? i.path : "")), row.image);
    assert.deepEqual(recs[k]!.answers, [row.answer]);
    assert.equal(recs[k]!.id, `data-00000-of-00001.arrow:${k}`);
  }
  // the file's first path strings (read from its bytes) are BCN20000_03396-1..7.jpg, then row 1's BCN20000_00062-1.jpg
  const base = "data/validation-public/Dermatology/bcn20000/imagesVal/BCN20000_";
  assert.deepEqual(recs[0]!.images, [1, 2, 3, 4, 5, 6, 7].map((k) => ({ kind: "path", path: `${base}03396-${k}.jpg` })));
  assert.deepEqual(recs[1]!.images[0], { kind: "path", path: `${base}00062-1.jpg` });
  assert.ok(recs.some((r) => r.images.length === 1));
});

// Each bad row, the reason it must be rejected for, and the column to name.
const BAD: { row: number; reason: string; column: string }[] = [
  { row: 1, reason: "empty conversation", column: "conversations" },
  { row: 2, reason: "missing <image>", column: "conversations" },
  { row: 3, reason: "unreadable image", column: "image" },
  { row: 4, reason: "wrong type", column: "conversations[1]" },
  { row: 5, reason: "<image> without image", column: "image" },
  { row: 6, reason: "no assistant turn", column: "conversations" },
  { row: 8, reason: "unreadable image", column: "image" },
];

async function badShard(dir: string): Promise<{ file: string; set: ShardSet }> {
  const jpg = realImages()[0]!.bytes;
  const ok = (q: string) => [{ from: "human", value: q }, { from: "gpt", value: "fine" }];
  const rows = [
    { id: "0", image: { bytes: jpg, path: "a.jpg" }, conversations: ok("<image>\nok?") },
    { id: "1", image: { bytes: jpg, path: "a.jpg" }, conversations: [] },
    { id: "2", image: { bytes: jpg, path: "a.jpg" }, conversations: ok("no image token here") },
    { id: "3", image: { bytes: new TextEncoder().encode("<html>not an image</html>"), path: "x.jpg" }, conversations: ok("<image>\n?") },
    { id: "4", image: null, conversations: [{ from: "human", value: "hi" }, { from: "gpt", value: null }] },
    { id: "5", image: null, conversations: ok("<image>\nwhere is the picture?") },
    { id: "6", image: null, conversations: [{ from: "human", value: "only a question" }] },
    { id: "7", image: null, conversations: ok("text only") },
    { id: "8", image: { bytes: new Uint8Array(0), path: "empty.jpg" }, conversations: ok("<image>") },
  ];
  const file = path.join(dir, "bad_rows.arrow");
  await writeArrowFile(file, LLAVA_FEATURES, rows, { batchRows: 4 });
  return { file, set: await openShards(file) };
}

test("each bad row is a DataError naming file, record batch, row and column", async () => {
  const { dir, remove } = await tmpDir("badrows");
  try {
    const { file, set } = await badShard(dir);
    const errors = new Map<number, RowError>();
    for await (const { row, where } of set.rows()) {
      try {
        toConversationRecord(row, LLAVA_MAPPING, where);
      } catch (e) {
        assert.ok(e instanceof RowError, String(e));
        errors.set(where.row, e);
      }
    }
    assert.deepEqual([...errors.keys()], BAD.map((b) => b.row));
    for (const b of BAD) {
      const e = errors.get(b.row)!;
      assert.equal(e.reason, b.reason);
      assert.ok(e.message.startsWith(`${file}, batch ${Math.floor(b.row / 4)}, row ${b.row}, column "${b.column}`), e.message);
      assert.ok(e.message.includes(b.reason), e.message);
      assert.deepEqual(e.where, { file, batch: Math.floor(b.row / 4), row: b.row, column: e.where.column });
    }
    assert.match(errors.get(3)!.message, /25 bytes starting "3c 68 74 6d/);
    // raise mode stops at the first bad row
    await assert.rejects(collect(conversationRecords(set, LLAVA_MAPPING)), (e: Error) => {
      assert.ok(e instanceof RowError);
      assert.match(e.message, /bad_rows\.arrow, batch 0, row 1, column "conversations": empty conversation/);
      return true;
    });
  } finally {
    await remove();
  }
});

test("skip mode yields the good rows and counts every skipped row by reason with its location", async () => {
  const { dir, remove } = await tmpDir("skiprows");
  try {
    const { set } = await badShard(dir);
    const got: ConversationRecord[] = await collect(conversationRecords(set, LLAVA_MAPPING, { onError: "skip" }));
    assert.deepEqual(got.map((r) => r.id), ["0", "7"]);
    const rep = set.report;
    assert.equal(rep.rows, 7);
    assert.deepEqual(Object.fromEntries(rep.byReason), {
      "empty conversation": 1, "missing <image>": 1, "unreadable image": 2, "wrong type": 1, "<image> without image": 1,
      "no assistant turn": 1,
    });
    assert.deepEqual(rep.first.map((s) => s.row), BAD.map((b) => b.row));
    assert.match(rep.summary(), /^skipped 7 rows \(/);
    // a cursor skips nothing before it and reports only what it passed
    const set2 = await openShards(set.shards[0]!.file, { onError: "skip" });
    const tail = await collect(conversationRecords(set2, LLAVA_MAPPING, { from: { shard: 0, row: 5 } }));
    assert.deepEqual(tail.map((r) => r.id), ["7"]);
    assert.deepEqual(set2.report.first.map((s) => s.row), [5, 6, 8]);
  } finally {
    await remove();
  }
});

test("missing and wrongly typed columns are caught from the schema, naming file and column", async () => {
  const { dir, remove } = await tmpDir("cols");
  try {
    const { file, set } = await badShard(dir);
    assert.throws(() => checkMapping(set, { ...LLAVA_MAPPING, conversations: "dialog" }, "conversation"),
      (e: Error) => e instanceof RowError && e.reason === "missing column" && e.message.startsWith(`${file}, column "dialog"`));
    assert.throws(() => conversationRecords(set, { conversations: "id" }),
      (e: Error) => e instanceof RowError && e.reason === "wrong type" && /column "id".*Utf8/.test(e.message));
    assert.throws(() => vqaRecords(set, { question: "conversations" }), /column "conversations": wrong type/);
    assert.throws(() => vqaRecords(set, { question: "id", answers: "image" }), /column "image": wrong type/);
    // the row-level check names batch and row too
    assert.throws(
      () => toConversationRecord({ id: "x" }, LLAVA_MAPPING, { shard: 0, file: "f.arrow", batch: 3, row: 301 }),
      /f\.arrow, batch 3, row 301, column "conversations": missing column/,
    );
  } finally {
    await remove();
  }
});

test("sniffImageFormat: real JPEGs, PNG/GIF/WebP headers, garbage", () => {
  for (const im of realImages()) assert.equal(sniffImageFormat(im.bytes), "jpeg");
  assert.equal(sniffImageFormat(new Uint8Array([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0])), "png");
  assert.equal(sniffImageFormat(new TextEncoder().encode("GIF89a......")), "gif");
  assert.equal(sniffImageFormat(new TextEncoder().encode("RIFF\0\0\0\0WEBPVP8 ")), "webp");
  assert.equal(sniffImageFormat(new TextEncoder().encode("hello world!")), undefined);
  assert.equal(sniffImageFormat(new Uint8Array(0)), undefined);
});
