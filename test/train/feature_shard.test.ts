// Feature-cache lookups through FeatureShard (train/feature_shard.ts): synchronous row reads parse the four columns
// from the bytes exactly (shapes, provenance, null provenance); a damaged row is a DataError naming file, row and
// column, and the cache sets that shard aside (renamed *.corrupt, entries recomputed); a shape clash between images
// of one batch is the caller's error and leaves the shard alone; no await once a shard is open.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { setBackend, tf } from "../../core/backend.js";
import { DataError } from "../../core/errors.js";
import { indexIpcFile } from "../../data/ipc_index.js";
import { computeOrLoadFeatures, openFeatureCache, type FeatureEntry } from "../../train/feature_cache.js";
import { imageSha256, type FeatureKey } from "../../train/feature_key.js";
import { FeatureShard } from "../../train/feature_shard.js";

const KEY: FeatureKey = {
  vision: { source: "test/feature_shard", fingerprint: "st1:test", layer: 1 },
  reducer: { name: "visionzip", params: { dominant: 2, contextual: 1 } },
  preprocess: { mode: "none", config: null },
  dtype: "float32",
};

const sha = (s: string) => imageSha256(new TextEncoder().encode(s));

function entry(i: number, T: number, C: number, provenance?: number[][]): FeatureEntry {
  const e: FeatureEntry = { sha: sha(`img${i}`), tokens: Float32Array.from({ length: T * C }, (_, j) => i * 1000 + j + 0.25), shape: [T, C] };
  if (provenance) e.provenance = provenance;
  return e;
}

async function tempRoot(t: { after: (fn: () => Promise<void>) => void }): Promise<string> {
  const root = await mkdtemp(path.join(tmpdir(), "vzt-fshard-"));
  t.after(() => rm(root, { recursive: true, force: true }));
  return root;
}

/** A cache folder holding one shard of `entries`; returns its folder and shard file. */
async function oneShard(root: string, entries: FeatureEntry[]): Promise<{ dir: string; file: string }> {
  const c = await openFeatureCache(root, KEY);
  await c.put(entries);
  await c.close();
  const [name] = (await readdir(c.dir)).filter((n) => n.endsWith(".arrow"));
  return { dir: c.dir, file: path.join(c.dir, name!) };
}

test("FeatureShard.read: shapes, tokens, provenance (and null) parsed exactly from each row", async (t) => {
  const entries = [entry(0, 3, 4, [[], [1, 2]]), entry(1, 2, 5), entry(2, 1, 1, [[7]])];
  const { file } = await oneShard(await tempRoot(t), entries);
  const shard = await FeatureShard.open(file, 3);
  try {
    entries.forEach((e, row) => {
      const v = shard.read(row, e.sha);
      assert.deepEqual(v.shape, e.shape);
      assert.deepEqual(new Float32Array(v.tokens.slice().buffer), e.tokens);
      assert.deepEqual(v.provenance(), e.provenance);
    });
    assert.throws(() => shard.read(1, entries[0]!.sha), (e: unknown) =>
      e instanceof DataError && e.where.row === 1 && e.where.column === "image_sha256" && e.message.includes(file));
    assert.throws(() => shard.read(3, entries[0]!.sha), /row 3 out of range/);
  } finally {
    await shard.close();
  }
  await assert.rejects(FeatureShard.open(file, 4), /holds 3 rows, its entry list 4/);
});

test("a damaged row: the lookup misses, the shard is set aside, and recomputed entries are stored again", async (t) => {
  const root = await tempRoot(t);
  const entries = [entry(0, 3, 4), entry(1, 3, 4), entry(2, 3, 4)];
  const { dir, file } = await oneShard(root, entries);
  const bytes = new Uint8Array(await readFile(file));
  const idx = await indexIpcFile(file);
  const at = Buffer.from(bytes.buffer).indexOf(entries[1]!.sha, idx.batchStart[1]!);
  assert.ok(at > idx.batchStart[1]! && at < idx.batchEnd[1]!, "row 1's sha lies in its record batch");
  bytes[at] = bytes[at] === 0x61 ? 0x62 : 0x61;
  await writeFile(file, bytes);

  const c = await openFeatureCache(root, KEY);
  assert.equal(c.stats.entries, 3, "headers alone look fine");
  const got = await c.getMany(entries.map((e) => e.sha));
  assert.deepEqual(got.map((e) => e === undefined), [true, true, true], "every entry of the damaged shard is dropped");
  assert.ok((await readdir(dir)).includes(`${path.basename(file)}.corrupt`));
  assert.equal(c.stats.entries, 0);
  await c.put(entries);
  await c.close();
  const c2 = await openFeatureCache(root, KEY);
  assert.deepEqual((await c2.get(entries[1]!.sha)), entries[1]!.tokens);
  await c2.close();
});

test("computeOrLoadFeatures: hits from disk, pending hits, misses and duplicates in one [B, T, C]; a shape clash leaves the shard alone", async (t) => {
  await setBackend("cpu", { quiet: true });
  const root = await tempRoot(t);
  const stored = [entry(0, 2, 3), entry(1, 2, 3)];
  const { dir, file } = await oneShard(root, stored);
  const c = await openFeatureCache(root, KEY);
  t.after(() => c.close());
  const pending = entry(2, 2, 3);
  await c.put([pending]);
  const computedFor = entry(3, 2, 3);
  let calls = 0;
  const compute = (px: tf.Tensor4D): tf.Tensor3D => {
    calls++;
    assert.equal(px.shape[0], 1, "the duplicated miss is computed once");
    return tf.tensor3d(computedFor.tokens, [1, 2, 3]);
  };
  const img = (e: FeatureEntry) => ({ sha: e.sha, pixelValues: () => ({ data: new Float32Array(3), shape: [3, 1, 1] as [number, number, number] }) });
  const order = [stored[1]!, computedFor, pending, stored[0]!, computedFor];
  const before = tf.memory().numTensors;
  const out = await computeOrLoadFeatures(c, order.map(img), compute);
  assert.equal(tf.memory().numTensors, before + 1);
  assert.deepEqual(out.shape, [5, 2, 3]);
  assert.deepEqual(await out.data(), Float32Array.from(order.flatMap((e) => Array.from(e.tokens))));
  out.dispose();
  assert.equal(calls, 1);
  assert.ok(c.has(computedFor.sha), "the computed entry is stored");
  // The shard is open now: a lookup finishes without giving the event loop a turn.
  let turned = false;
  setImmediate(() => (turned = true));
  const again = await c.getMany(stored.map((e) => e.sha));
  assert.equal(turned, false, "no event-loop turn during a lookup in an open shard");
  assert.deepEqual(again.map((e) => e?.tokens), stored.map((e) => e.tokens));
  // An image whose stored tokens have another shape than the batch's first: the caller's error, not corruption.
  await c.put([entry(9, 4, 3)]);
  await c.flush();
  await assert.rejects(computeOrLoadFeatures(c, [img(stored[0]!), img(entry(9, 4, 3))], compute), /has tokens \[4,3\].*has \[2, 3\]/);
  assert.ok((await readdir(dir)).includes(path.basename(file)), "no shard was set aside");
  assert.ok(!(await readdir(dir)).some((n) => n.endsWith(".corrupt")));
});
