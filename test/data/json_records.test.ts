// Streaming LLaVA JSON / JSONL records: values equal JSON.parse of the whole file at every chunk size, record line
// numbers, bad records reported and skipped over, broken array structure refused with the line, the real files.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { writeFile } from "node:fs/promises";
import path from "node:path";
import { DataError } from "../../core/errors.js";
import { detectJsonFormat, readJsonRecords } from "../../data/json_records.js";
import type { JsonRecord, ReadJsonOptions } from "../../data/json_records.js";
import { realDir, tmpDir } from "./make_shards.js";

async function all(file: string, opts: ReadJsonOptions = {}): Promise<JsonRecord[]> {
  const out: JsonRecord[] = [];
  for await (const r of readJsonRecords(file, opts)) out.push(r);
  return out;
}

async function rejects(file: string, opts: ReadJsonOptions, parts: (string | RegExp)[]): Promise<void> {
  let err: unknown;
  try {
    await all(file, opts);
  } catch (e) {
    err = e;
  }
  assert.ok(err instanceof DataError, `expected a DataError, got ${String(err)}`);
  for (const p of parts) {
    if (typeof p === "string") assert.ok(err.message.includes(p), `"${err.message}" should name ${p}`);
    else assert.match(err.message, p);
  }
}

/** Values that stress the scanner: brackets, commas and quotes inside strings, escapes, multibyte UTF-8, scalars. */
const TRICKY: unknown[] = [
  { id: "a", conversations: [{ from: "human", value: "<image>\nWhat is ] } [ { , here?" }, { from: "gpt", value: 'say "hi" \\' }] },
  { id: "b\\", image: "x/y.jpg", nested: { deep: [[1, 2, { z: "]]]" }], []], empty: {} } },
  { id: "日本語 é 🙂", v: "tab\tnewline\nunicode-escape \u00e9 \\u0041" },
  {},
  [],
  42,
  null,
  "a bare string with ] and ,",
  { last: true, n: -1.5e3 },
];

test("JSON array: every chunk size gives JSON.parse's values, record lines, BOM and CRLF", async () => {
  const { dir, remove } = await tmpDir("jsonrec");
  try {
    // one element per line, except element 1 which is pretty-printed over several lines
    const lines = TRICKY.map((v, i) => (i === 1 ? JSON.stringify(v, null, 2) : JSON.stringify(v)));
    const text = "\ufeff[\r\n" + lines.join(",\r\n") + "\r\n]\r\n";
    const file = path.join(dir, "data.json");
    await writeFile(file, text);
    const want = JSON.parse(text.slice(1)) as unknown[];
    assert.deepEqual(want, TRICKY);
    const startLines: number[] = [];
    let line = 2;
    for (const l of lines) {
      startLines.push(line);
      line += l.split("\n").length;
    }
    assert.equal(await detectJsonFormat(file), "json-array");
    for (const chunkBytes of [1, 2, 3, 5, 7, 64, 1 << 20]) {
      const recs = await all(file, { chunkBytes });
      assert.deepEqual(recs.map((r) => r.value), want, `chunkBytes ${chunkBytes}`);
      assert.deepEqual(recs.map((r) => r.index), want.map((_, i) => i));
      assert.deepEqual(recs.map((r) => r.line), startLines, `lines at chunkBytes ${chunkBytes}`);
      assert.ok(recs.every((r) => r.error === undefined));
      const read = recs.map((r) => r.bytesRead);
      assert.ok(read.every((b, i) => b <= Buffer.byteLength(text) && (i === 0 || b >= read[i - 1]!)), "bytesRead grows");
    }
  } finally {
    await remove();
  }
});

test("JSON array: a record that is not valid JSON is reported and the next one still parses", async () => {
  const { dir, remove } = await tmpDir("jsonrec");
  try {
    const file = path.join(dir, "bad.json");
    await writeFile(file, '[\n{"id": "ok1"},\n{"id": "bad", "image": tru},\n{"id": "bad2", "x": "\\q"},\n{"id": "ok2"}\n]');
    for (const chunkBytes of [3, 1 << 20]) {
      const recs = await all(file, { chunkBytes });
      assert.equal(recs.length, 4);
      assert.deepEqual(recs[0]!.value, { id: "ok1" });
      assert.match(recs[1]!.error ?? "", /invalid JSON/);
      assert.equal(recs[1]!.line, 3);
      assert.equal(recs[1]!.index, 1);
      assert.match(recs[2]!.error ?? "", /invalid JSON/);
      assert.deepEqual(recs[3]!.value, { id: "ok2" });
      assert.equal(recs[3]!.line, 5);
    }
  } finally {
    await remove();
  }
});

test("JSON array: broken structure is refused with the file and line", async () => {
  const { dir, remove } = await tmpDir("jsonrec");
  try {
    const cases: [string, string, (string | RegExp)[]][] = [
      ["trunc.json", '[\n{"id": "a"},\n{"id": "b", "conv', ["trunc.json", "truncated", "record 1 starting at line 3"]],
      ["unclosed.json", '[\n{"id": "a"}\n', ["truncated", "not closed"]],
      ["trailing.json", '[{"id": "a"},\n]', ['trailing ","', "line 2"]],
      ["nocomma.json", '[{"id": "a"}\n{"id": "b"}]', ['expected "," or "]"', "line 2"]],
      ["after.json", '[{"id": "a"}]\n[', ["after the closing", "line 2"]],
      ["empty.json", "  \n", ["empty"]],
    ];
    for (const [name, text, parts] of cases) {
      const file = path.join(dir, name);
      await writeFile(file, text);
      await rejects(file, { format: "json-array", chunkBytes: 4 }, parts);
    }
    const obj = path.join(dir, "obj.json");
    await writeFile(obj, '{"id": "a"}');
    await rejects(obj, { format: "json-array" }, ['expected "[" first']);
  } finally {
    await remove();
  }
});

test("JSON Lines: values, lines (blank lines not counted as records), CRLF, BOM, a bad line", async () => {
  const { dir, remove } = await tmpDir("jsonrec");
  try {
    const file = path.join(dir, "data.jsonl");
    const body = TRICKY.map((v) => JSON.stringify(v));
    // lines: 1 BOM+rec0, 2 rec1, 3 blank, 4 rec2, 5 bad, 6.. rest
    const text = "\ufeff" + body[0] + "\r\n" + body[1] + "\r\n\r\n" + body[2] + "\n{broken\n" + body.slice(3).join("\n");
    await writeFile(file, text);
    assert.equal(await detectJsonFormat(file), "jsonl");
    for (const chunkBytes of [1, 4, 1 << 20]) {
      const recs = await all(file, { chunkBytes });
      assert.equal(recs.length, TRICKY.length + 1);
      const good = recs.filter((r) => r.error === undefined);
      assert.deepEqual(good.map((r) => r.value), TRICKY);
      assert.deepEqual(recs.map((r) => r.line), [1, 2, 4, 5, ...TRICKY.slice(3).map((_, i) => 6 + i)]);
      assert.deepEqual(recs.map((r) => r.index), recs.map((_, i) => i));
      assert.match(recs[3]!.error ?? "", /invalid JSON/);
    }
    // a .json file whose first value is an object is JSON Lines (as coco_pope_random.json upstream)
    const jsonNamed = path.join(dir, "lines.json");
    await writeFile(jsonNamed, '{"a": 1}\n{"a": 2}\n');
    assert.equal(await detectJsonFormat(jsonNamed), "jsonl");
    assert.deepEqual((await all(jsonNamed)).map((r) => r.value), [{ a: 1 }, { a: 2 }]);
  } finally {
    await remove();
  }
});

test("real LLaVA files: LCS-558K first 10 (JSON array) and coco2014 GPT-4 QA (90 JSON Lines)", async () => {
  const lcs = realDir("llava_data", "blip_laion_cc_sbu_558k_first10.json");
  const lcsRecs = await all(lcs, { chunkBytes: 97 });
  assert.deepEqual(lcsRecs.map((r) => r.value), JSON.parse(readFileSync(lcs, "utf8")));
  assert.equal(lcsRecs.length, 10);
  assert.equal(lcsRecs[0]!.line, 2);
  const coco = realDir("llava_data", "coco2014_val_gpt4_qa_30x3.jsonl");
  const cocoRecs = await all(coco);
  const want = readFileSync(coco, "utf8").split("\n").filter((l) => l.trim()).map((l) => JSON.parse(l) as unknown);
  assert.equal(cocoRecs.length, 90);
  assert.deepEqual(cocoRecs.map((r) => r.value), want);
  assert.deepEqual(cocoRecs.map((r) => r.line), want.map((_, i) => i + 1));
});
