// Batch loader on a fake row source and encoder: order, epochs, --shard splits, exact resume (permutation and
// shuffle buffer, with skipped rows), errors with row context, skip counts, prefetch overlap and its bound.
import assert from "node:assert/strict";
import { test } from "node:test";
import { DataError } from "../../core/errors.js";
import type { Sample } from "../../data/batch.js";
import { createLoader, type Encoder, type LoaderBatch, type LoaderOptions, type RowSource, type SourceRow } from "../../data/loader.js";
import { RowIndex, epochPermutation, takeShard } from "../../data/sampler.js";
import { RowError, SkipReport } from "../../data/skip_report.js";

interface FakeRow {
  g: number;
}

const SHARDS = [7, 0, 12, 5]; // 24 rows, one empty shard
const TOTAL = 24;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Rows {g} (global index); rows in `dropped` cannot be read: left out and reported, as ShardSet does in skip mode. */
function fakeSource(shardRows: number[], dropped = new Set<number>(), report?: SkipReport): RowSource<FakeRow> & { reads: number } {
  const idx = new RowIndex(shardRows);
  const get = (shard: number, row: number): SourceRow<FakeRow> | undefined => {
    const where = { shard, file: `shard-${shard}.arrow`, batch: Math.floor(row / 4), row };
    const g = idx.globalIndex(shard, row);
    if (dropped.has(g)) {
      report?.add(new RowError("corrupt shard", "fake", where));
      return undefined;
    }
    return { row: { g }, where };
  };
  const src = {
    shardRows,
    reads: 0,
    async readRows(shard: number, rows: number[]) {
      src.reads++;
      return rows.map((r) => get(shard, r)).filter((x): x is SourceRow<FakeRow> => x !== undefined);
    },
    async *streamShard(shard: number, from: number) {
      for (let r = from; r < shardRows[shard]!; r++) {
        const x = get(shard, r);
        if (x) yield x;
      }
    },
  };
  return src;
}

/** A deterministic sample per row: length and image depend on g; rows in `bad` throw a RowError without location. */
function fakeEncoder(bad = new Set<number>()): Encoder<FakeRow> {
  return ({ g }) => {
    if (bad.has(g)) throw new RowError("bad value", `row ${g} is bad`, { column: "conversations" });
    const withImage = g % 3 !== 0;
    const inputIds = [1, ...(withImage ? [-200] : []), ...Array.from({ length: 2 + (g % 5) }, (_, k) => 100 + g * 10 + k)];
    const labels = inputIds.map((t, k) => (t < 0 || k < 3 ? -100 : t));
    const images = withImage ? [{ data: Float32Array.from({ length: 12 }, (_, k) => g + k / 100), shape: [3, 2, 2] as const }] : [];
    return { id: `r${g}`, inputIds, labels, images } satisfies Sample;
  };
}

function loader(o: Partial<LoaderOptions<FakeRow>> = {}) {
  return createLoader<FakeRow>({
    source: fakeSource(SHARDS),
    encode: fakeEncoder(),
    batchSize: 5,
    seed: 17,
    collate: { padId: 0, imageShape: [3, 2, 2] },
    ...o,
  });
}

async function all(l: AsyncIterable<LoaderBatch>): Promise<LoaderBatch[]> {
  const out: LoaderBatch[] = [];
  for await (const b of l) out.push(b);
  return out;
}

const rowsOf = (bs: LoaderBatch[]) => bs.flatMap((b) => b.ids.map((id) => Number(id.slice(1))));

function assertSameBatch(a: LoaderBatch, b: LoaderBatch, what: string): void {
  assert.deepEqual(a.ids, b.ids, `${what}: ids`);
  assert.equal(a.epoch, b.epoch, `${what}: epoch`);
  for (const k of ["inputIds", "labels", "attentionMask", "pixelValues"] as const) {
    assert.ok(Buffer.from(a[k].buffer, a[k].byteOffset, a[k].byteLength).equals(Buffer.from(b[k].buffer, b[k].byteOffset, b[k].byteLength)), `${what}: ${k}`);
  }
  assert.deepEqual(a.cursor, b.cursor, `${what}: cursor`);
}

test("one epoch in seeded permutation order, every row once, short last batch; none = in order", async () => {
  const bs = await all(loader());
  assert.deepEqual(bs.map((b) => b.batchSize), [5, 5, 5, 5, 4]);
  assert.deepEqual(rowsOf(bs), Array.from(epochPermutation(TOTAL, 17, 0)));
  assert.deepEqual(bs.at(-1)!.cursor, { epoch: 1, position: 0, seed: 17, shuffle: "permutation", rows: TOTAL });
  // Batch contents follow the samples: hasImage, pixel rows, where.
  const b = bs[0]!;
  assert.equal(b.pixelShape[0], b.hasImage.filter(Boolean).length);
  const g0 = rowsOf([b])[0]!;
  const loc = new RowIndex(SHARDS).locate(g0);
  assert.equal(b.where[0]!.file, `shard-${loc.shard}.arrow`);
  assert.equal(b.where[0]!.row, loc.row);
  assert.equal(b.where[0]!.position, 0);
  assert.deepEqual(rowsOf(await all(loader({ shuffle: "none" }))), Array.from({ length: TOTAL }, (_, i) => i));
});

test("epochs: each a permutation, different orders, batches never span epochs; dropLast", async () => {
  const bs = await all(loader({ epochs: 3 }));
  assert.equal(bs.length, 15);
  for (let e = 0; e < 3; e++) {
    const rows = rowsOf(bs.filter((b) => b.epoch === e));
    assert.deepEqual(rows, Array.from(epochPermutation(TOTAL, 17, e)));
  }
  assert.notDeepEqual(rowsOf(bs.slice(0, 5)), rowsOf(bs.slice(5, 10)));
  const dl = await all(loader({ epochs: 2, dropLast: true }));
  assert.deepEqual(dl.map((b) => [b.epoch, b.batchSize]), [[0, 5], [0, 5], [0, 5], [0, 5], [1, 5], [1, 5], [1, 5], [1, 5]]);
});

test("shuffle buffer: every row once per epoch, not in order, seeded", async () => {
  const a = rowsOf(await all(loader({ shuffle: "buffer", bufferSize: 6, epochs: 2 })));
  assert.deepEqual([...a.slice(0, TOTAL)].sort((x, y) => x - y), Array.from({ length: TOTAL }, (_, i) => i));
  assert.deepEqual([...a.slice(TOTAL)].sort((x, y) => x - y), Array.from({ length: TOTAL }, (_, i) => i));
  assert.notDeepEqual(a.slice(0, TOTAL), a.slice(TOTAL));
  assert.deepEqual(rowsOf(await all(loader({ shuffle: "buffer", bufferSize: 6, epochs: 2 }))), a);
  assert.equal(loader({ shuffle: "auto", maxPermutationRows: 10 }).shuffle, "buffer");
});

test("--shard i/N: workers' rows are disjoint and cover everything (permutation and buffer)", async () => {
  for (const shuffle of ["permutation", "buffer", "none"] as const) {
    const seen = new Map<number, string>();
    for (let i = 0; i < 3; i++) {
      const rows = rowsOf(await all(loader({ shuffle, bufferSize: 5, shard: `${i}/3` })));
      if (shuffle === "permutation") assert.deepEqual(rows, takeShard(Array.from(epochPermutation(TOTAL, 17, 0)), { index: i, count: 3 }));
      for (const g of rows) {
        assert.equal(seen.get(g), undefined, `${shuffle}: row ${g} in workers ${seen.get(g)} and ${i}`);
        seen.set(g, `${i}/3`);
      }
    }
    assert.equal(seen.size, TOTAL, shuffle);
  }
});

test("resume: a restored cursor gives exactly the uninterrupted run's next batches, for every k", async () => {
  const configs: [string, () => Partial<LoaderOptions<FakeRow>>][] = [
    ["permutation", () => ({})],
    ["buffer", () => ({ shuffle: "buffer", bufferSize: 6 })],
    ["permutation 1/3", () => ({ shard: "1/3", batchSize: 3 })],
    ["buffer 2/3", () => ({ shuffle: "buffer", bufferSize: 5, shard: "2/3", batchSize: 3 })],
    [
      "skip, permutation",
      () => ({ onError: "skip", encode: fakeEncoder(new Set([2, 9, 10])), source: fakeSource(SHARDS, new Set([0, 15])) }),
    ],
    [
      "skip, buffer, 0/2",
      () => ({ onError: "skip", shuffle: "buffer", bufferSize: 4, shard: "0/2", encode: fakeEncoder(new Set([3, 4])), source: fakeSource(SHARDS, new Set([8, 20])) }),
    ],
  ];
  for (const [name, cfg] of configs) {
    const full = await all(loader({ epochs: 3, ...cfg() }));
    assert.ok(full.length >= 6, name);
    for (let k = 0; k <= full.length; k++) {
      const first = loader({ epochs: 3, ...cfg(), prefetch: k % 3 });
      for (let i = 0; i < k; i++) assertSameBatch((await first.next()).value as LoaderBatch, full[i]!, `${name}, batch ${i}`);
      const saved = JSON.parse(JSON.stringify(first.cursor()));
      await first.close();
      if (k > 0) assert.deepEqual(saved, full[k - 1]!.cursor);
      const rest = await all(loader({ epochs: 3, ...cfg(), resume: saved }));
      assert.equal(rest.length, full.length - k, `${name}, k=${k}`);
      rest.forEach((b, i) => assertSameBatch(b, full[k + i]!, `${name}, resumed at ${k}, batch ${k + i}`));
    }
  }
});

test("a resume cursor from another run is refused", () => {
  const c = { epoch: 0, position: 5, seed: 17, shuffle: "permutation" as const, rows: TOTAL };
  assert.throws(() => loader({ seed: 18, resume: c }), /seed 17/);
  assert.throws(() => loader({ shard: "0/2", resume: c }), /unsharded/);
});

test("encoder errors surface at their batch with file, record batch and row; other errors stay fatal", async () => {
  const perm = epochPermutation(TOTAL, 17, 0);
  const g = perm[7]!; // third batch of 3
  const l = loader({ batchSize: 3, encode: fakeEncoder(new Set([g])) });
  assert.equal((await l.next()).done, false);
  assert.equal((await l.next()).done, false);
  const { shard, row } = new RowIndex(SHARDS).locate(g);
  await assert.rejects(l.next(), (e: unknown) => {
    assert.ok(e instanceof RowError);
    assert.equal(e.reason, "bad value");
    assert.equal(e.message, `shard-${shard}.arrow, batch ${Math.floor(row / 4)}, row ${row}, column "conversations": bad value: row ${g} is bad`);
    return true;
  });
  assert.equal((await l.next()).done, true);
  const boom = loader({ onError: "skip", encode: () => { throw new TypeError("boom"); } });
  await assert.rejects(boom.next(), (e: unknown) => e instanceof TypeError === false && !(e instanceof DataError) && /row \d+: encoding failed: boom/.test((e as Error).message));
});

test("skip mode: bad rows are counted, never silently dropped", async () => {
  const report = new SkipReport();
  const bad = new Set([1, 5, 23]);
  const dropped = new Set([0, 12]);
  const bs = await all(loader({ onError: "skip", report, encode: fakeEncoder(bad), source: fakeSource(SHARDS, dropped, report) }));
  const rows = rowsOf(bs);
  assert.equal(rows.length, TOTAL - 5);
  assert.deepEqual(rows, Array.from(epochPermutation(TOTAL, 17, 0)).filter((g) => !bad.has(g) && !dropped.has(g)));
  assert.equal(report.rows, 5);
  assert.equal(report.byReason.get("bad value"), 3);
  assert.equal(report.byReason.get("corrupt shard"), 2);
  assert.ok(report.first.every((s) => s.file?.startsWith("shard-") && s.row !== undefined));
});

test("prefetch overlaps decoding with the consumer's work (< 0.8 x serial)", async () => {
  const ms = 50;
  const batches = 10;
  const slow: Encoder<FakeRow> = async (r, w) => {
    await sleep(ms);
    return fakeEncoder()(r, w);
  };
  const run = async (prefetch: number) => {
    const t0 = performance.now();
    let n = 0;
    for await (const _ of loader({ source: fakeSource([batches * 4]), batchSize: 4, encode: slow, prefetch })) {
      n++;
      await sleep(ms); // the consumer's "training step"
    }
    assert.equal(n, batches);
    return performance.now() - t0;
  };
  const serial = batches * 2 * ms;
  const overlapped = await run(2);
  assert.ok(overlapped < 0.8 * serial, `prefetch 2: ${overlapped.toFixed(0)} ms, serial ${serial} ms`);
  const none = await run(0);
  assert.ok(none >= 0.95 * serial, `prefetch 0: ${none.toFixed(0)} ms should be serial (${serial} ms)`);
});

test("prefetch stays bounded: at most depth x batchSize rows encoded ahead of the consumer", async () => {
  for (const depth of [1, 2, 3]) {
    let started = 0;
    let received = 0;
    let maxAhead = 0;
    const counting: Encoder<FakeRow> = (r, w) => {
      started++;
      maxAhead = Math.max(maxAhead, started - received);
      return fakeEncoder()(r, w);
    };
    for await (const b of loader({ source: fakeSource([60]), batchSize: 4, encode: counting, prefetch: depth })) {
      received += b.batchSize;
      await sleep(10);
    }
    assert.equal(received, 60);
    assert.equal(maxAhead, depth * 4, `depth ${depth}`);
  }
});

test("breaking out of the loop stops reading ahead", async () => {
  const src = fakeSource([200]);
  const l = loader({ source: src, batchSize: 2, shuffle: "none" });
  for await (const b of l) {
    assert.deepEqual(b.ids, ["r0", "r1"]);
    break;
  }
  const reads = src.reads;
  await sleep(20);
  assert.equal(src.reads, reads);
  assert.ok(reads <= 3, `reads ${reads}`);
});

test("end to end: HF save_to_disk shards with JPEGs and LLaVA conversations -> tokenizer -> preprocess -> batches", async () => {
  const { mkdtemp, readFile, rm } = await import("node:fs/promises");
  const os = await import("node:os");
  const path = await import("node:path");
  const { createHash } = await import("node:crypto");
  const { goldenDir } = await import("../helpers.js");
  const { writeDatasetFolder } = await import("../../data/write_shards.js");
  const { openShards } = await import("../../data/arrow_shards.js");
  const { shardSetSource } = await import("../../data/loader.js");
  const { llavaEncoder } = await import("../../data/sample_encoder.js");
  const { loadTokenizer } = await import("../../data/tokenizer.js");
  const { padTokenIdOf } = await import("../../data/batch.js");

  const golden = goldenDir();
  const jpeg = async (p: string) => new Uint8Array(await readFile(path.join(golden, p)));
  const coco1 = await jpeg("real/images/COCO_val2014_000000265719.jpg");
  const coco2 = await jpeg("real/images/COCO_val2014_000000297078.jpg");
  const case1 = await jpeg("preprocess/case_1.jpg");
  const manifest = JSON.parse(await readFile(path.join(golden, "preprocess/manifest.json"), "utf8")) as {
    cases: { case: string; expected: { clip: { pixel_values_sha256_f32le: string } } }[];
  };
  const case1Sha = manifest.cases.find((c) => c.case === "case_1")!.expected.clip.pixel_values_sha256_f32le;

  const rows = [
    { id: "a", image: { bytes: coco1, path: null }, q: "<image>\nWhat is in the picture?", ans: "A train on the tracks." },
    { id: "b", image: { bytes: case1, path: "case_1.jpg" }, q: "Describe the image.\n<image>", ans: "Colourful noise." },
    { id: "c", image: null, q: "What is two plus two?", ans: "Four." },
    { id: "d", image: { bytes: coco2, path: null }, q: "<image>\nHow many people are there?", ans: "Two people." },
    { id: "e", image: { bytes: coco1, path: null }, q: "<image>\nIs it daytime?", ans: "Yes" },
  ];
  const features = {
    id: { _type: "Value", dtype: "string" },
    image: { _type: "Image" },
    conversations: [{ from: { _type: "Value", dtype: "string" }, value: { _type: "Value", dtype: "string" } }],
  };
  const dir = await mkdtemp(path.join(os.tmpdir(), "vzt-loader-e2e-"));
  try {
    const written = await writeDatasetFolder(
      dir,
      features,
      rows.map((r) => ({ id: r.id, image: r.image, conversations: [{ from: "human", value: r.q }, { from: "gpt", value: r.ans }] })),
      { batchRows: 2, shardBytes: 150_000 },
    );
    assert.ok(written.shards.length >= 2, "several shards");
    const set = await openShards(dir);
    const tok = await loadTokenizer(path.join(golden, "real/models/llava-hf_llava-1.5-7b-hf"));
    const l = createLoader({
      source: shardSetSource(set),
      encode: llavaEncoder({ tokenizer: tok, tokenize: { template: "vicuna_v1" } }),
      batchSize: 2,
      seed: 3,
      collate: { padId: padTokenIdOf(tok), imageShape: [3, 336, 336] },
      report: set.report,
    });
    const batches = await all(l);
    assert.deepEqual(batches.map((b) => b.batchSize), [2, 2, 1]);
    const byId = new Map(rows.map((r) => [r.id, r]));
    const seen: string[] = [];
    for (const b of batches) {
      assert.deepEqual(b.pixelShape, [b.hasImage.filter(Boolean).length, 3, 336, 336]);
      assert.equal(b.pixelValues.length, b.pixelShape[0] * 3 * 336 * 336);
      let img = 0;
      b.ids.forEach((id, r) => {
        seen.push(id);
        const want = byId.get(id)!;
        const ids = Array.from(b.inputIds.subarray(r * b.seqLen, (r + 1) * b.seqLen));
        const labels = Array.from(b.labels.subarray(r * b.seqLen, (r + 1) * b.seqLen));
        const mask = Array.from(b.attentionMask.subarray(r * b.seqLen, (r + 1) * b.seqLen));
        const n = mask.reduce((s, v) => s + v, 0);
        assert.deepEqual(mask, [...Array(n).fill(1), ...Array(b.seqLen - n).fill(0)], "right padding");
        assert.ok(ids.slice(n).every((t) => t === 32001), "pad id 32001 (<pad>)");
        assert.equal(ids.filter((t) => t === -200).length, want.image ? 1 : 0, `${id}: one -200 per image row`);
        assert.equal(b.hasImage[r], want.image !== null);
        if (want.image) assert.deepEqual(b.imagePositions[r], [ids.indexOf(-200)]);
        assert.equal(ids[0], 1, "BOS");
        const trained = labels.filter((t) => t !== -100);
        assert.equal(trained.at(-1), 2, "</s> trained");
        assert.equal(tok.decode(trained, { skipSpecialTokens: true }).trim(), want.ans, `${id}: labels decode to the answer`);
        assert.ok(labels.slice(n).every((t) => t === -100));
        if (want.image) {
          const px = b.pixelValues.subarray(img * 3 * 336 * 336, (img + 1) * 3 * 336 * 336);
          if (id === "b") assert.equal(createHash("sha256").update(Buffer.from(px.buffer, px.byteOffset, px.byteLength)).digest("hex"), case1Sha);
          img++;
        }
        assert.ok(b.where[r]!.file!.endsWith(".arrow"));
      });
    }
    assert.deepEqual([...seen].sort(), ["a", "b", "c", "d", "e"]);
    assert.ok(set.report.empty);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
