// `vzt make-data shapes`: the DatasetDict layout and column types, row counts per split, byte-identical output for a
// seed, rows read back through openShards + the LLaVA / VQA mappings equal to the generated description, and every
// image decoding to 336x336 with each shape's colour at its centre.
import { test } from "node:test";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { readdirSync, readFileSync, statSync } from "node:fs";
import path from "node:path";
import { openShards } from "../../data/arrow_shards.js";
import type { ShardRow } from "../../data/arrow_shards.js";
import { decodeImage } from "../../data/image.js";
import { makeShapesData, SHAPES_SPLITS } from "../../data/make_data.js";
import { LLAVA_MAPPING, toConversationRecord, toVqaRecord, VQA_MAPPING } from "../../data/records.js";
import type { ImageRef } from "../../data/records.js";
import { COLORS, generateShapes } from "../../data/shapes.js";
import { tmpDir } from "./make_shards.js";

const SIZES = { seed: 7, train: 24, evalVqa: 10, evalPope: 10 };
/** lmms-lab/POPE: the label is the single string `answer`. */
const POPE_MAPPING = { id: "question_id", image: "image", question: "question", answers: "answer" };

async function rowsOf(dir: string, split?: string): Promise<ShardRow[]> {
  const set = await openShards(dir, split === undefined ? {} : { split });
  const out: ShardRow[] = [];
  for await (const r of set.rows()) out.push(r);
  return out;
}

/** sha256 of every file under `dir`, by relative path. */
function hashTree(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (d: string) => {
    for (const n of readdirSync(d).sort()) {
      const p = path.join(d, n);
      if (statSync(p).isDirectory()) walk(p);
      else out[path.relative(dir, p)] = createHash("sha256").update(readFileSync(p)).digest("hex");
    }
  };
  walk(dir);
  return out;
}

function bytesOf(images: ImageRef[]): Uint8Array {
  assert.equal(images.length, 1);
  const img = images[0]!;
  assert.equal(img.kind, "bytes");
  return img.kind === "bytes" ? img.bytes : new Uint8Array();
}

test("same seed -> byte-identical folders; another seed differs; existing output needs overwrite", async () => {
  const { dir, remove } = await tmpDir("makedata");
  try {
    const a = await makeShapesData({ out: path.join(dir, "a"), ...SIZES });
    await makeShapesData({ out: path.join(dir, "b"), ...SIZES });
    await makeShapesData({ out: path.join(dir, "c"), ...SIZES, seed: 8 });
    const ha = hashTree(path.join(dir, "a"));
    assert.deepEqual(Object.keys(ha).sort(), [
      "dataset_dict.json",
      ...SHAPES_SPLITS.flatMap((s) => [`${s}/data-00000-of-00001.arrow`, `${s}/dataset_info.json`, `${s}/state.json`]),
    ].sort());
    assert.deepEqual(hashTree(path.join(dir, "b")), ha);
    const hc = hashTree(path.join(dir, "c"));
    for (const s of SHAPES_SPLITS) assert.notEqual(hc[`${s}/data-00000-of-00001.arrow`], ha[`${s}/data-00000-of-00001.arrow`], s);
    assert.deepEqual(a, { out: path.join(dir, "a"), ...Object.fromEntries(SHAPES_SPLITS.map((s) => [s, path.join(dir, "a", s)])) });
    assert.deepEqual(JSON.parse(readFileSync(path.join(dir, "a", "dataset_dict.json"), "utf8")), { splits: [...SHAPES_SPLITS] });
    await assert.rejects(makeShapesData({ out: path.join(dir, "a"), ...SIZES }), /already holds a saved dataset/);
    await makeShapesData({ out: path.join(dir, "a"), ...SIZES, overwrite: true });
    assert.deepEqual(hashTree(path.join(dir, "a")), ha);
  } finally {
    await remove();
  }
});

test("splits, row counts and lmms-eval column types; rows read back through the mappings equal the description", async () => {
  const { dir, remove } = await tmpDir("makedata");
  try {
    const out = path.join(dir, "shapes");
    await makeShapesData({ out, ...SIZES });
    const want = generateShapes(SIZES);
    await assert.rejects(openShards(out), /splits \[train, eval_vqav2, eval_pope\]/);

    // train: LLaVA conversations
    const trainSet = await openShards(out, { split: "train" });
    assert.deepEqual(trainSet.schema.columns.map((c) => `${c.name}:${c.type}`), [
      "id:Utf8", "image:Struct<{bytes:Binary, path:Utf8}>", "conversations:List<Struct<{from:Utf8, value:Utf8}>>",
    ]);
    const train = await rowsOf(out, "train");
    assert.equal(train.length, SIZES.train);
    train.forEach(({ row, where }, i) => {
      const rec = toConversationRecord(row, LLAVA_MAPPING, where);
      const s = want.train[i]!;
      assert.equal(rec.id, s.id);
      assert.deepEqual(rec.conversations, s.conversations);
      assert.equal(rec.images[0]?.path, s.image);
    });

    // eval_vqav2: lmms-lab/VQAv2 columns
    const vqaSet = await openShards(out, { split: "eval_vqav2" });
    assert.deepEqual(vqaSet.schema.columns.map((c) => `${c.name}:${c.type}`), [
      "question_type:Utf8", "multiple_choice_answer:Utf8",
      "answers:List<Struct<{answer:Utf8, answer_confidence:Utf8, answer_id:Int64}>>", "image_id:Int64",
      "answer_type:Utf8", "question_id:Int64", "question:Utf8", "image:Struct<{bytes:Binary, path:Utf8}>",
    ]);
    const vqa = await rowsOf(out, "eval_vqav2");
    assert.equal(vqa.length, SIZES.evalVqa);
    vqa.forEach(({ row, where }, i) => {
      const rec = toVqaRecord(row, VQA_MAPPING, where);
      const q = want.evalVqa[i]!;
      assert.equal(rec.id, q.question_id);
      assert.equal(rec.question, q.question);
      assert.deepEqual(rec.answers, q.answers.map((x) => x.answer));
      assert.equal(rec.answers.length, 10);
      assert.equal(row.multiple_choice_answer, q.multiple_choice_answer);
      assert.equal(row.question_type, q.question_type);
      assert.equal(row.answer_type, q.answer_type);
      assert.equal(Number(row.image_id), q.image_id);
      assert.equal(rec.images[0]?.path, q.image);
    });

    // eval_pope: lmms-lab/POPE columns (ids as strings)
    const popeSet = await openShards(path.join(out, "eval_pope")); // a split folder opens on its own too
    assert.deepEqual(popeSet.schema.columns.map((c) => `${c.name}:${c.type}`), [
      "id:Utf8", "question_id:Utf8", "question:Utf8", "answer:Utf8", "image_source:Utf8",
      "image:Struct<{bytes:Binary, path:Utf8}>", "category:Utf8",
    ]);
    const pope = await rowsOf(out, "eval_pope");
    assert.equal(pope.length, SIZES.evalPope);
    pope.forEach(({ row, where }, i) => {
      const rec = toVqaRecord(row, POPE_MAPPING, where);
      const q = want.evalPope[i]!;
      assert.equal(rec.id, String(q.question_id));
      assert.deepEqual(rec.answers, [q.answer]);
      assert.equal(row.category, q.category);
      assert.equal(row.image_source, q.image_source);
    });
    assert.equal(pope.filter(({ row }) => row.answer === "yes").length, SIZES.evalPope / 2);
  } finally {
    await remove();
  }
});

test("every image decodes to 336x336 RGB with each shape's colour at its centre", async () => {
  const { dir, remove } = await tmpDir("makedata");
  try {
    const out = path.join(dir, "shapes");
    await makeShapesData({ out, ...SIZES });
    const want = generateShapes(SIZES);
    let n = 0;
    for (const split of SHAPES_SPLITS) {
      for (const { row, where } of await rowsOf(out, split)) {
        const rec = split === "train" ? toConversationRecord(row, LLAVA_MAPPING, where)
          : toVqaRecord(row, split === "eval_pope" ? POPE_MAPPING : VQA_MAPPING, where);
        const img = await decodeImage(bytesOf(rec.images));
        assert.equal(img.width, 336);
        assert.equal(img.height, 336);
        const scene = want.scenes.get(rec.images[0]!.path!)!;
        for (const s of scene.shapes) {
          const o: number = (s.cy * img.width + s.cx) * 3;
          assert.deepEqual([...img.data.subarray(o, o + 3)], [...COLORS[s.color]], `${rec.images[0]!.path} ${s.color} ${s.kind}`);
        }
        n++;
      }
    }
    assert.equal(n, SIZES.train + SIZES.evalVqa + SIZES.evalPope);
  } finally {
    await remove();
  }
});
