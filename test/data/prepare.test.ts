// `vzt prepare`: LLaVA JSON / JSONL + image root -> save_to_disk shards. Skip counts by reason on a records file
// with path traversal, an absolute path, symlinks out of the root, missing / corrupt images, text-only records and bad
// records (JSON and JSONL give identical shards); read-back through openShards + toConversationRecord with the
// original image bytes; raise mode names file, line, id and path; shard splitting; determinism; the real records.
import { test } from "node:test";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { existsSync, readFileSync } from "node:fs";
import { mkdir, readdir, symlink, writeFile } from "node:fs/promises";
import path from "node:path";
import sharp from "sharp";
import { openShards } from "../../data/arrow_shards.js";
import type { ShardRow } from "../../data/arrow_shards.js";
import { ConfigError, DataError } from "../../core/errors.js";
import { checkImage, formatPrepareSummary, parseByteSize, prepare, PrepareError } from "../../data/prepare.js";
import type { PrepareSummary } from "../../data/prepare.js";
import { LLAVA_MAPPING, toConversationRecord } from "../../data/records.js";
import { realDir, realImages, tmpDir } from "./make_shards.js";

async function all(dir: string): Promise<ShardRow[]> {
  const set = await openShards(dir);
  const out: ShardRow[] = [];
  for await (const r of set.rows()) out.push(r);
  return out;
}

function sha(file: string): string {
  return createHash("sha256").update(readFileSync(file)).digest("hex");
}

const conv = (q: string, a: string, image = true) => [
  { from: "human", value: image ? `<image>\n${q}` : q },
  { from: "gpt", value: a },
];

interface Fixture {
  root: string;
  outside: string;
  /** Bytes of the files a good record points at, by relative path. */
  files: Map<string, Uint8Array>;
  records: Record<string, unknown>[];
  /** Raw text records (not valid JSON), inserted after records[insertAt - 1]. */
  badText: string;
}

/** An image root with real JPEGs, a PNG, corrupt files and symlinks, a folder outside it, and the records. */
async function makeFixture(base: string): Promise<Fixture> {
  const root = path.join(base, "images");
  const outside = path.join(base, "outside");
  await mkdir(path.join(root, "sub"), { recursive: true });
  await mkdir(path.join(root, "corrupt"), { recursive: true });
  await mkdir(path.join(root, "png"), { recursive: true });
  await mkdir(outside, { recursive: true });
  const [a, b] = realImages();
  const files = new Map<string, Uint8Array>();
  await writeFile(path.join(root, "coco1.jpg"), a!.bytes);
  files.set("coco1.jpg", a!.bytes);
  await writeFile(path.join(root, "sub", "coco2.jpg"), b!.bytes);
  files.set("sub/coco2.jpg", b!.bytes);
  const png = new Uint8Array(await sharp({ create: { width: 40, height: 30, channels: 3, background: { r: 200, g: 10, b: 30 } } }).png().toBuffer());
  await writeFile(path.join(root, "png", "a.png"), png);
  files.set("png/a.png", png);
  files.set("link_in.jpg", a!.bytes);
  files.set("sub/../coco1.jpg", a!.bytes);
  await writeFile(path.join(root, "corrupt", "trunc.jpg"), a!.bytes.subarray(0, Math.floor(a!.bytes.length / 2)));
  await writeFile(path.join(root, "corrupt", "garbage.jpg"), new TextEncoder().encode("this is not an image at all"));
  await writeFile(path.join(outside, "secret.jpg"), b!.bytes); // a valid image: reading it would write it
  await symlink(path.join(outside, "secret.jpg"), path.join(root, "link_out.jpg"));
  await symlink(outside, path.join(root, "outdir"));
  await symlink(path.join(root, "coco1.jpg"), path.join(root, "link_in.jpg"));
  const records: Record<string, unknown>[] = [
    { id: "ok-jpg", image: "coco1.jpg", conversations: conv("What is shown?", "a kitchen") }, // 0
    { id: "ok-sub", image: "sub/coco2.jpg", conversations: conv("Describe.", "a street") }, // 1
    { id: "text-only", conversations: conv("Hello?", "Hi.", false) }, // 2
    { id: "dotdot", image: "../outside/secret.jpg", conversations: conv("q", "a") }, // 3
    { id: "absolute", image: path.join(outside, "secret.jpg"), conversations: conv("q", "a") }, // 4
    { id: "link-out", image: "link_out.jpg", conversations: conv("q", "a") }, // 5
    { id: "dir-link-out", image: "outdir/secret.jpg", conversations: conv("q", "a") }, // 6
    { id: "missing", image: "nope/missing.jpg", conversations: conv("q", "a") }, // 7
    { id: "truncated", image: "corrupt/trunc.jpg", conversations: conv("q", "a") }, // 8
    { id: "garbage", image: "corrupt/garbage.jpg", conversations: conv("q", "a") }, // 9
    { id: "no-conv", image: "coco1.jpg" }, // 10
    { id: "empty-conv", image: "coco1.jpg", conversations: [] }, // 11
    { id: "ok-png", image: "png/a.png", conversations: conv("Color?", "red") }, // 12
    { id: "ok-link-in", image: "link_in.jpg", conversations: conv("Again?", "yes") }, // 13
    { id: "ok-normalized", image: "sub/../coco1.jpg", conversations: conv("Same?", "yes") }, // 14
    { id: "no-token", image: "coco1.jpg", conversations: conv("no token here", "x", false) }, // 15
    { id: 17, conversations: [{ from: "human", value: "numeric id, multi-turn" }, { from: "gpt", value: "1" }, { from: "human", value: "more" }, { from: "gpt", value: "2" }] }, // 16
    { id: "dotdot-missing", image: "sub/../../nowhere/x.jpg", conversations: conv("q", "a") }, // 17: refused before any disk access
  ];
  return { root, outside, files, records, badText: '{"id": "bad-json", "image": tru}' };
}

const GOOD = ["ok-jpg", "ok-sub", "text-only", "ok-png", "ok-link-in", "ok-normalized", "17"];
const EXPECTED_SKIPS = {
  "image outside root": 5,
  "missing image": 1,
  "corrupt image": 2,
  "missing conversations": 1,
  "empty conversation": 1,
  "missing <image>": 1,
  "bad JSON": 1,
};

/** JSON array text (pretty, one record per block) with the bad text appended as the last element. */
function jsonArrayText(f: Fixture): string {
  return "[\n" + [...f.records.map((r) => JSON.stringify(r, null, 2)), f.badText].join(",\n") + "\n]\n";
}
function jsonlText(f: Fixture): string {
  return [...f.records.map((r) => JSON.stringify(r)), f.badText].join("\n") + "\n";
}

function checkCounts(s: PrepareSummary): void {
  assert.equal(s.records, 19);
  assert.equal(s.written, GOOD.length);
  assert.equal(s.withImage, 5);
  assert.equal(s.textOnly, 2);
  assert.equal(s.skipped, 12);
  assert.deepEqual(s.skippedByReason, EXPECTED_SKIPS);
  const byId = new Map(s.firstSkipped.map((k) => [k.id, k]));
  for (const id of ["dotdot", "absolute", "link-out", "dir-link-out", "dotdot-missing"]) assert.equal(byId.get(id)?.reason, "image outside root", id);
  assert.equal(byId.get("dotdot")!.image, "../outside/secret.jpg");
  assert.equal(byId.get("dotdot")!.index, 3);
  assert.equal(byId.get("missing")!.reason, "missing image");
  assert.equal(byId.get("truncated")!.reason, "corrupt image");
  assert.match(byId.get("truncated")!.message, /truncated/);
  assert.equal(byId.get("garbage")!.reason, "corrupt image");
  assert.equal(byId.get("no-token")!.reason, "missing <image>");
  assert.equal(s.firstSkipped.at(-1)!.reason, "bad JSON");
  assert.equal(s.firstSkipped.at(-1)!.index, 18);
}

test("JSON and JSONL: skip counts by reason, nothing read outside the root, identical shards that read back exactly", async () => {
  const { dir, remove } = await tmpDir("prepare");
  try {
    const f = await makeFixture(dir);
    await writeFile(path.join(dir, "data.json"), jsonArrayText(f));
    await writeFile(path.join(dir, "data.jsonl"), jsonlText(f));
    const sJson = await prepare({ input: path.join(dir, "data.json"), imageRoot: f.root, out: path.join(dir, "out_json") });
    const sJsonl = await prepare({ input: path.join(dir, "data.jsonl"), imageRoot: f.root, out: path.join(dir, "out_jsonl") });
    checkCounts(sJson);
    checkCounts(sJsonl);
    // JSONL lines are record index + 1; in the pretty array record k starts after the "[" line and k earlier blocks
    assert.deepEqual(sJsonl.firstSkipped.map((k) => k.line), sJsonl.firstSkipped.map((k) => k.index + 1));
    const dotdot = sJson.firstSkipped.find((k) => k.id === "dotdot")!;
    const want = jsonArrayText(f).split("\n").findIndex((l) => l.includes('"dotdot"')); // the "id" line, 1 below "{"
    assert.equal(dotdot.line, want); // 0-based index of the id line == 1-based line of its "{"
    assert.equal(sJson.shards.length, 1);
    assert.equal(sha(sJson.shards[0]!), sha(sJsonl.shards[0]!), "same records -> byte-identical shard");
    assert.match(formatPrepareSummary(sJson), /skipped 12[\s\S]*image outside root 5[\s\S]*"\.\.\/outside\/secret\.jpg"/);

    const rows = await all(path.join(dir, "out_json"));
    assert.equal(rows.length, GOOD.length);
    const byId = new Map(f.records.map((r) => [String(r.id), r]));
    rows.forEach(({ row, where }, i) => {
      const rec = toConversationRecord(row, LLAVA_MAPPING, where);
      assert.equal(rec.id, GOOD[i]);
      const src = byId.get(rec.id)!;
      assert.deepEqual(rec.conversations, src.conversations);
      if (src.image === undefined) {
        assert.deepEqual(rec.images, []);
        assert.equal(row.image, null);
      } else {
        assert.equal(rec.images.length, 1);
        const img = rec.images[0]!;
        assert.equal(img.kind, "bytes");
        if (img.kind !== "bytes") return;
        assert.equal(img.path, src.image);
        assert.ok(Buffer.from(img.bytes).equals(Buffer.from(f.files.get(src.image as string)!)), `${rec.id}: image bytes`);
      }
    });
    // the secret outside the root (bytes of coco2) appears only once, for ok-sub
    const secret = Buffer.from(readFileSync(path.join(f.outside, "secret.jpg")));
    assert.equal(rows.filter(({ row }) => Buffer.from((row.image as { bytes?: Uint8Array } | null)?.bytes ?? []).equals(secret)).length, 1);
    // state.json and dataset_info.json: split "train", features
    const info = JSON.parse(readFileSync(path.join(dir, "out_json", "dataset_info.json"), "utf8")) as { features: unknown; splits: { train: { num_examples: number } } };
    assert.equal(info.splits.train.num_examples, GOOD.length);
    assert.deepEqual(Object.keys(info.features as object), ["id", "image", "conversations"]);
  } finally {
    await remove();
  }
});

test("raise mode stops at the first bad record naming file, line, index, id and path; leaves no partial shard", async () => {
  const { dir, remove } = await tmpDir("prepare");
  try {
    const f = await makeFixture(dir);
    const input = path.join(dir, "data.jsonl");
    await writeFile(input, jsonlText(f));
    const out = path.join(dir, "out");
    let err: unknown;
    try {
      await prepare({ input, imageRoot: f.root, out, onError: "raise" });
    } catch (e) {
      err = e;
    }
    assert.ok(err instanceof PrepareError, `expected PrepareError, got ${String(err)}`);
    assert.equal(err.skip.reason, "image outside root");
    assert.equal(err.skip.index, 3);
    assert.equal(err.where.row, 3);
    assert.equal(err.where.file, input);
    for (const part of [input, "line 4", '"dotdot"', '"../outside/secret.jpg"', "image outside root"]) {
      assert.ok(err.message.includes(part), `"${err.message}" should name ${part}`);
    }
    assert.ok(!existsSync(path.join(out, "state.json")));
    assert.deepEqual((await readdir(out)).filter((n) => n.endsWith(".partial")), []);
    // a file holding only good records passes in raise mode, and the output folder can be reused without overwrite
    const good = path.join(dir, "good.jsonl");
    await writeFile(good, f.records.filter((r) => GOOD.includes(String(r.id))).map((r) => JSON.stringify(r)).join("\n"));
    const s = await prepare({ input: good, imageRoot: f.root, out, onError: "raise" });
    assert.equal(s.written, GOOD.length);
    assert.equal(s.skipped, 0);
    // a second run into the same folder needs overwrite
    await assert.rejects(prepare({ input: good, imageRoot: f.root, out }), /already holds a saved dataset/);
    const again = await prepare({ input: good, imageRoot: f.root, out, overwrite: true });
    assert.equal(again.written, GOOD.length);
  } finally {
    await remove();
  }
});

test("a small shardBytes splits into several shards whose rows, in order, are all records; output is deterministic", async () => {
  const { dir, remove } = await tmpDir("prepare");
  try {
    const f = await makeFixture(dir);
    const paths = ["coco1.jpg", "sub/coco2.jpg", "png/a.png", undefined];
    const records = Array.from({ length: 250 }, (_, i) => {
      const image = paths[i % paths.length];
      return image === undefined
        ? { id: `r${i}`, conversations: conv(`text ${i}`, `answer ${i}`, false) }
        : { id: `r${i}`, image, conversations: conv(`question ${i}`, `answer ${i}`) };
    });
    const input = path.join(dir, "many.json");
    await writeFile(input, JSON.stringify(records));
    // three 100-row batches of ~100 KB images each: a 1 MB target closes a shard after every batch
    const s1 = await prepare({ input, imageRoot: f.root, out: path.join(dir, "a"), shardBytes: 1e6, verify: "decode" });
    assert.equal(s1.written, 250);
    assert.equal(s1.shards.length, 3);
    assert.deepEqual(s1.shards.map((p) => path.basename(p)), [0, 1, 2].map((i) => `data-0000${i}-of-00003.arrow`));
    const set = await openShards(path.join(dir, "a"));
    assert.deepEqual(set.shards.map((x) => x.rows), [100, 100, 50]);
    const rows = await all(path.join(dir, "a"));
    assert.deepEqual(rows.map(({ row }) => row.id), records.map((r) => r.id));
    rows.forEach(({ row, where }, i) => {
      const rec = toConversationRecord(row, LLAVA_MAPPING, where);
      assert.deepEqual(rec.conversations, records[i]!.conversations);
      const image = records[i]!.image;
      if (image) assert.ok(rec.images[0]?.kind === "bytes" && Buffer.from(rec.images[0].bytes).equals(Buffer.from(f.files.get(image)!)));
      else assert.equal(rec.images.length, 0);
    });
    const s2 = await prepare({ input, imageRoot: f.root, out: path.join(dir, "b"), shardBytes: 1e6, concurrency: 3 });
    assert.deepEqual(s2.shards.map(sha), s1.shards.map(sha), "same input -> byte-identical shards");
    for (const name of ["state.json", "dataset_info.json"]) {
      assert.equal(readFileSync(path.join(dir, "a", name), "utf8"), readFileSync(path.join(dir, "b", name), "utf8"));
    }
  } finally {
    await remove();
  }
});

test("image checks: truncated JPEG / PNG and garbage are refused in header and decode modes, good images pass", async () => {
  const [a] = realImages();
  const png = new Uint8Array(await sharp({ create: { width: 8, height: 8, channels: 3, background: "#123456" } }).png().toBuffer());
  const webp = new Uint8Array(await sharp({ create: { width: 8, height: 8, channels: 3, background: "#123456" } }).webp().toBuffer());
  for (const verify of ["header", "decode"] as const) {
    assert.equal(await checkImage(a!.bytes, verify), undefined);
    assert.equal(await checkImage(png, verify), undefined);
    assert.equal(await checkImage(webp, verify), undefined);
    assert.ok(await checkImage(a!.bytes.subarray(0, 5000), verify), `truncated JPEG (${verify})`);
    assert.ok(await checkImage(png.subarray(0, png.length - 20), verify), `truncated PNG (${verify})`);
    assert.ok(await checkImage(new Uint8Array([0x47, 0x49, 0x46, 0x38, 0x39, 0x61, 1, 0, 1, 0]), verify), `GIF (${verify})`);
    assert.ok(await checkImage(new Uint8Array(0), verify), `empty (${verify})`);
  }
});

test("real LCS-558K first 10 records (JSON array and a JSONL copy) over a fake image root; coco GPT-4 QA has no conversations", async () => {
  const { dir, remove } = await tmpDir("prepare");
  try {
    const lcs = realDir("llava_data", "blip_laion_cc_sbu_558k_first10.json");
    const records = JSON.parse(readFileSync(lcs, "utf8")) as { id: string; image: string; conversations: { from: string; value: string }[] }[];
    const root = path.join(dir, "images");
    const bytes = new Map<string, Uint8Array>();
    for (const [i, r] of records.entries()) {
      await mkdir(path.join(root, path.dirname(r.image)), { recursive: true });
      const img = new Uint8Array(await sharp({ create: { width: 16 + i, height: 12, channels: 3, background: { r: i * 20, g: 100, b: 50 } } }).png().toBuffer());
      await writeFile(path.join(root, r.image), img);
      bytes.set(r.id, img);
    }
    const jsonl = path.join(dir, "lcs.jsonl");
    await writeFile(jsonl, records.map((r) => JSON.stringify(r)).join("\n") + "\n");
    const s1 = await prepare({ input: lcs, imageRoot: root, out: path.join(dir, "out1"), onError: "raise", verify: "decode" });
    const s2 = await prepare({ input: jsonl, imageRoot: root, out: path.join(dir, "out2"), onError: "raise" });
    for (const s of [s1, s2]) {
      assert.equal(s.records, 10);
      assert.equal(s.written, 10);
      assert.equal(s.withImage, 10);
    }
    assert.equal(sha(s1.shards[0]!), sha(s2.shards[0]!));
    const rows = await all(path.join(dir, "out1"));
    rows.forEach(({ row, where }, i) => {
      const rec = toConversationRecord(row, LLAVA_MAPPING, where);
      assert.equal(rec.id, records[i]!.id);
      assert.deepEqual(rec.conversations, records[i]!.conversations);
      assert.ok(rec.images[0]?.kind === "bytes" && Buffer.from(rec.images[0].bytes).equals(Buffer.from(bytes.get(rec.id)!)));
      assert.equal(rec.images[0]?.path, records[i]!.image);
    });

    const coco = realDir("llava_data", "coco2014_val_gpt4_qa_30x3.jsonl");
    const s3 = await prepare({ input: coco, imageRoot: root, out: path.join(dir, "out3") });
    assert.equal(s3.records, 90);
    assert.equal(s3.written, 0);
    assert.deepEqual(s3.skippedByReason, { "missing conversations": 90 });
    assert.match(s3.firstSkipped[0]!.message, /keys: id, image, instruction, output, type/);
  } finally {
    await remove();
  }
});

test("shard sizes parse like datasets' max_shard_size; bad options and a missing image root are refused", async () => {
  assert.equal(parseByteSize("500MB"), 500e6);
  assert.equal(parseByteSize("1GB"), 1e9);
  assert.equal(parseByteSize("64MiB"), 64 * 2 ** 20);
  assert.equal(parseByteSize("1.5 kb"), 1500);
  assert.equal(parseByteSize("4096"), 4096);
  for (const bad of ["", "0", "-5MB", "12 parsecs", "MB"]) assert.throws(() => parseByteSize(bad), ConfigError, bad);
  const { dir, remove } = await tmpDir("prepare");
  try {
    const input = path.join(dir, "x.jsonl");
    await writeFile(input, "");
    await assert.rejects(prepare({ input, imageRoot: dir, out: path.join(dir, "o"), onError: "ignore" as "skip", shardBytes: 0 }),
      (e: unknown) => e instanceof ConfigError && e.problems.length === 2);
    await assert.rejects(prepare({ input, imageRoot: path.join(dir, "no-such-root"), out: path.join(dir, "o") }),
      (e: unknown) => e instanceof DataError && /image root/.test(e.message) && e.message.includes("no-such-root"));
    await assert.rejects(prepare({ input: path.join(dir, "none.json"), imageRoot: dir, out: path.join(dir, "o") }),
      (e: unknown) => e instanceof DataError && e.message.includes("none.json"));
  } finally {
    await remove();
  }
});
