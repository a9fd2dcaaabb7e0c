// Feature cache: exact round trip, compute once per image across epochs and runs, invalidation by every key part,
// crash safety (partial shards of a SIGKILLed writer are never trusted and are cleaned), the key.json guard, and
// the golden clip_vision_336 tower + VisionZip through computeOrLoadFeatures (wasm and cpu), with no tensor growth.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { copyFile, mkdtemp, readdir, readFile, rm, stat, writeFile } from "node:fs/promises";
import { hostname, tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { tf, setBackend } from "../../core/backend.js";
import { ConfigError, DataError } from "../../core/errors.js";
import { assertNoTensorLeak } from "../../core/memory.js";
import { loadVisionTower } from "../../models/clip_vision.js";
import { readSafetensors, writeSafetensors } from "../../models/safetensors.js";
import { buildReducer } from "../../reduce/reducer.js";
import { computeOrLoadFeatures, listFeatureCaches, openFeatureCache, type FeatureEntry } from "../../train/feature_cache.js";
import {
  featureKeyHash, imageSha256, makeFeatureKey, weightsFingerprint, type FeatureKey,
} from "../../train/feature_key.js";
import { goldenDir, maxAbsDiff, readGoldenVector } from "../helpers.js";
import { CHILD_C, CHILD_T, childEntry } from "./feature_cache_child.js";

const MODELS = path.join(goldenDir(), "models");
const V336 = path.join(MODELS, "clip_vision_336");
const VEC = path.join(MODELS, "vectors", "clip_336");

const KEY: FeatureKey = {
  vision: { source: "golden/clip_vision_336", fingerprint: "st1:test", layer: 1 },
  reducer: { name: "visionzip", params: { dominant: 54, contextual: 10, keepCls: true } },
  preprocess: { mode: "none", config: null },
  dtype: "float32",
};

async function tempRoot(t: { after: (fn: () => Promise<void>) => void }): Promise<string> {
  const root = await mkdtemp(path.join(tmpdir(), "vzt-fcache-"));
  t.after(() => rm(root, { recursive: true, force: true }));
  return root;
}

const sha = (s: string) => imageSha256(new TextEncoder().encode(s));
const bytesOf = (a: Float32Array) => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);

/** An entry whose values are a known function of i. */
function entry(i: number, T = 3, C = 4): FeatureEntry {
  return { sha: sha(`e${i}`), tokens: Float32Array.from({ length: T * C }, (_, j) => i * 100 + j), shape: [T, C] };
}

test("values round-trip bit for bit (-0, subnormals, NaN payloads, ±Inf), with shape and provenance", async (t) => {
  const root = await tempRoot(t);
  const raw = new Uint32Array([0x80000000, 0x00000001, 0x7fc00001, 0xffa00000, 0x7f800000, 0xff800000, 0x7f7fffff, 0x3eaaaaab]);
  const tokens = new Float32Array(raw.buffer); // [2, 4]
  const e: FeatureEntry = { sha: sha("special"), tokens, shape: [2, 4], provenance: [[], [3, 7, 9]] };
  const c1 = await openFeatureCache(root, KEY);
  await c1.put([e, entry(1)]);
  const pending = await c1.getEntry(e.sha); // before flush: served from memory
  assert.deepEqual(bytesOf(pending!.tokens), bytesOf(tokens));
  await c1.close();
  const c2 = await openFeatureCache(root, KEY);
  assert.equal(c2.stats.entries, 2);
  const got = await c2.getEntry(e.sha);
  assert.ok(got);
  assert.deepEqual(new Uint32Array(got.tokens.buffer, got.tokens.byteOffset, got.tokens.length), raw);
  assert.deepEqual(got.shape, [2, 4]);
  assert.deepEqual(got.provenance, [[], [3, 7, 9]]);
  assert.deepEqual(Array.from((await c2.get(entry(1).sha))!), Array.from(entry(1).tokens));
  assert.equal(await c2.get(sha("absent")), undefined);
  assert.deepEqual({ hits: c2.stats.hits, misses: c2.stats.misses }, { hits: 2, misses: 1 });
  await setBackend("cpu", { quiet: true });
  const tensor = await assertNoTensorLeak("getTensor", async () => {
    const x = (await c2.getTensor(entry(1).sha))!;
    const d = { shape: x.shape, data: Array.from(await x.data()) };
    x.dispose();
    return d;
  });
  assert.deepEqual(tensor, { shape: [3, 4], data: Array.from(entry(1).tokens) });
  await c2.close();
  const [info, ...more] = await listFeatureCaches(root);
  assert.equal(more.length, 0);
  assert.deepEqual({ keyHash: info!.keyHash, shards: info!.shards, entries: info!.entries, key: info!.key }, { keyHash: featureKeyHash(KEY), shards: 1, entries: 2, key: KEY });
  assert.ok(info!.bytes > 8 * 4 + 12 * 4);
});

test("bad entries are refused, naming the entry", async (t) => {
  const c = await openFeatureCache(await tempRoot(t), KEY);
  await assert.rejects(c.put([{ ...entry(1), sha: "abc" }]), /not a lowercase sha256/);
  await assert.rejects(c.put([{ ...entry(1), shape: [3, 5] }]), new RegExp(`${entry(1).sha}.*15 values`));
  await assert.rejects(c.put([{ ...entry(1), shape: [0, 4] as [number, number] }]), /positive integers/);
});

/** Fake "tower + reducer" with a known answer: tokens[b, t, c] = px[b, 0, t, c] for t < 3, c < 4. */
function sliceCompute(calls: number[]): (px: tf.Tensor4D) => tf.Tensor3D {
  return (px) => {
    calls.push(px.shape[0]);
    return tf.tidy(() => tf.reshape(tf.slice(px, [0, 0, 0, 0], [px.shape[0], 1, 3, 4]), [px.shape[0], 3, 4]) as tf.Tensor3D);
  };
}

function image(i: number): { sha: string; data: Float32Array } {
  const data = Float32Array.from({ length: 3 * 5 * 5 }, (_, j) => Math.fround(i + j / 7)); // [3, 5, 5]
  return { sha: imageSha256(data), data };
}

/** px[0, t, c] for t < 3, c < 4: what sliceCompute returns for image i. */
function expectedTokens(i: number): number[] {
  const d = image(i).data;
  return Array.from({ length: 12 }, (_, k) => d[Math.floor(k / 4) * 5 + (k % 4)]!);
}

test("computeOrLoadFeatures: compute runs once per image across two epochs and a later run; order kept", async (t) => {
  await setBackend("cpu", { quiet: true });
  const root = await tempRoot(t);
  const calls: number[] = [];
  const compute = sliceCompute(calls);
  const batches = [[0, 1], [2, 3]];
  const c2 = await openFeatureCache(root, KEY);
  const call = async (cache: typeof c2, ids: number[]) => {
    const before = tf.memory().numTensors;
    const imgs = ids.map((i) => ({ sha: image(i).sha, pixelValues: () => ({ data: image(i).data, shape: [3, 5, 5] as [number, number, number] }) }));
    const out = await computeOrLoadFeatures(cache, imgs, compute);
    assert.equal(tf.memory().numTensors, before + 1, "only the returned tensor remains");
    assert.deepEqual(out.shape, [ids.length, 3, 4]);
    assert.deepEqual(Array.from(await out.data()), ids.flatMap(expectedTokens));
    out.dispose();
  };
  for (let epoch = 0; epoch < 2; epoch++) for (const ids of batches) await call(c2, ids);
  assert.deepEqual(calls, [2, 2], "epoch 1 computes each batch once, epoch 2 computes nothing");
  await c2.close();
  const c3 = await openFeatureCache(root, KEY); // a later run
  await call(c3, [3, 1, 0, 2]);
  assert.deepEqual(calls, [2, 2], "the later run computes nothing");
  await call(c3, [1, 4, 4, 2, 5]); // mixed: 4 (twice) and 5 are new
  assert.deepEqual(calls, [2, 2, 2], "only the two new images are computed, the duplicate once");
  assert.deepEqual({ hits: c3.stats.hits, misses: c3.stats.misses, entries: c3.stats.entries }, { hits: 6, misses: 3, entries: 6 });
  await c3.close();
  const c4 = await openFeatureCache(root, KEY);
  await call(c4, [5, 4]);
  assert.deepEqual(calls, [2, 2, 2]);
  await c4.close();
});

test("invalidation: each key part gives another folder and no stale hit; equivalent keys share one", async (t) => {
  const root = await tempRoot(t);
  const base = await openFeatureCache(root, KEY);
  await base.put([entry(1)]);
  await base.close();
  const variants: [string, FeatureKey][] = [
    ["layer", { ...KEY, vision: { ...KEY.vision, layer: 2 } }],
    ["weights fingerprint", { ...KEY, vision: { ...KEY.vision, fingerprint: "st1:other" } }],
    ["revision", { ...KEY, vision: { ...KEY.vision, revision: "abc123" } }],
    ["source", { ...KEY, vision: { ...KEY.vision, source: "other/model" } }],
    ["reducer params", { ...KEY, reducer: { name: "visionzip", params: { dominant: 108, contextual: 20, keepCls: true } } }],
    ["reducer name", { ...KEY, reducer: { name: "pool", params: { budget: 64 } } }],
    ["preprocess mode", { ...KEY, preprocess: { mode: "pad", config: null } }],
  ];
  const hashes = new Set([featureKeyHash(KEY)]);
  for (const [what, key] of variants) {
    hashes.add(featureKeyHash(key));
    const c = await openFeatureCache(root, key);
    assert.equal(await c.get(entry(1).sha), undefined, `${what}: no stale hit`);
    assert.equal(c.dir, path.join(root, featureKeyHash(key)));
    await c.close();
  }
  assert.equal(hashes.size, variants.length + 1, "every variant has its own folder");
  const again = await openFeatureCache(root, { ...KEY, vision: { ...KEY.vision } });
  assert.ok(await again.get(entry(1).sha), "the unchanged key still hits");
  // Key order and undefined members do not matter.
  assert.equal(featureKeyHash({ dtype: "float32", preprocess: KEY.preprocess, reducer: KEY.reducer, vision: { ...KEY.vision, revision: undefined } }), featureKeyHash(KEY));
  assert.throws(() => featureKeyHash({ ...KEY, dtype: "float16" as "float32" }), ConfigError);
  assert.throws(() => featureKeyHash({ ...KEY, vision: { ...KEY.vision, layer: 1.5 } }), /key\.vision\.layer/);
});

test("makeFeatureKey: resolved reducer params and layer make equivalent settings one key; preprocessing is part of it", async () => {
  const zip64 = buildReducer("visionzip", { budget: 64 });
  const zipSplit = buildReducer("visionzip", { dominant: 54, contextual: 10 });
  const k1 = await makeFeatureKey({ source: V336, layer: -2, numLayers: 2, reducer: zip64 });
  const k2 = await makeFeatureKey({ source: V336, layer: 1, numLayers: 2, reducer: zipSplit });
  assert.equal(featureKeyHash(k1), featureKeyHash(k2));
  assert.equal(k1.vision.layer, 1);
  const k3 = await makeFeatureKey({ source: V336, layer: -2, numLayers: 2, reducer: buildReducer("visionzip", { budget: 128 }) });
  const k4 = await makeFeatureKey({ source: V336, layer: -2, numLayers: 2, reducer: zip64, preprocess: { mode: "pad" } });
  const k5 = await makeFeatureKey({
    source: V336, layer: -2, numLayers: 2, reducer: zip64,
    preprocess: { config: { crop_size: 224, size: 224, resample: 3, image_mean: [0.5, 0.5, 0.5], image_std: [0.5, 0.5, 0.5] } },
  });
  assert.equal(new Set([k1, k3, k4, k5].map(featureKeyHash)).size, 4);
});

test("weightsFingerprint: content, not path; changes with any tensor, with config.json, and in large files", async (t) => {
  const root = await tempRoot(t);
  const copy = path.join(root, "copy");
  const { mkdir } = await import("node:fs/promises");
  await mkdir(copy);
  for (const f of ["config.json", "model.safetensors"]) await copyFile(path.join(V336, f), path.join(copy, f));
  const fp = await weightsFingerprint(V336);
  assert.match(fp, /^st1:[0-9a-f]{64}$/);
  assert.equal(await weightsFingerprint(copy), fp, "a copy elsewhere has the same fingerprint");
  // "fine-tune" one bias: same header and size, other bytes
  await setBackend("cpu", { quiet: true });
  const w = await readSafetensors(path.join(V336, "model.safetensors"));
  const name = "vision_model.encoder.layers.1.mlp.fc2.bias";
  const old = w.get(name)!;
  w.set(name, tf.tidy(() => tf.add(old, 1e-3)));
  old.dispose();
  await writeSafetensors(path.join(copy, "model.safetensors"), Object.fromEntries(w), { format: "pt" });
  for (const x of w.values()) x.dispose();
  const fpTuned = await weightsFingerprint(copy);
  assert.notEqual(fpTuned, fp, "changed weights");
  const cfg = JSON.parse(await readFile(path.join(copy, "config.json"), "utf8")) as Record<string, unknown>;
  await writeFile(path.join(copy, "config.json"), JSON.stringify({ ...cfg, hidden_act: "gelu" }));
  assert.notEqual(await weightsFingerprint(copy), fpTuned, "changed config.json");
  // A 3 MiB file (16 sampled windows): a change of the first or last value, or of every value (a fine-tune), is seen.
  const big = path.join(root, "big");
  await mkdir(big);
  const data = new Float32Array(768 * 1024).map((_, i) => i);
  const save = async () => {
    const tt = tf.tensor1d(data);
    await writeSafetensors(path.join(big, "model.safetensors"), { w: tt });
    tt.dispose();
    return weightsFingerprint(big);
  };
  const seen = new Set([await save()]);
  for (const at of [0, data.length - 1]) {
    data[at] = -1;
    seen.add(await save());
  }
  data.forEach((x, i) => (data[i] = x * 1.001));
  seen.add(await save());
  assert.equal(seen.size, 4);
  await assert.rejects(weightsFingerprint(root), /no \*\.safetensors/);
});

test("key.json guard: a folder holding another key is refused; a shard of another key is not trusted", async (t) => {
  const root = await tempRoot(t);
  const c = await openFeatureCache(root, KEY);
  await c.put([entry(1)]);
  await c.close();
  const dir = path.join(root, featureKeyHash(KEY));
  const keyFile = path.join(dir, "key.json");
  const good = await readFile(keyFile, "utf8");
  const other = { ...KEY, vision: { ...KEY.vision, layer: 7 } };
  await writeFile(keyFile, JSON.stringify({ format: "vzt-feature-cache/1", key: other }));
  await assert.rejects(openFeatureCache(root, KEY), (e: unknown) => e instanceof DataError && /another key/.test(e.message) && e.message.includes(keyFile));
  await writeFile(keyFile, good);
  // A shard copied in from another key's folder is set aside, not served.
  const c2 = await openFeatureCache(root, other);
  await c2.put([{ ...entry(2), sha: entry(1).sha }]);
  await c2.close();
  const dir2 = path.join(root, featureKeyHash(other));
  const [foreign] = (await readdir(dir2)).filter((n) => n.endsWith(".arrow"));
  await rm(dir, { recursive: true });
  await openFeatureCache(root, KEY).then((x) => x.close()); // fresh folder, empty
  await copyFile(path.join(dir2, foreign!), path.join(dir, foreign!));
  const c3 = await openFeatureCache(root, KEY);
  assert.equal(await c3.get(entry(1).sha), undefined);
  assert.ok((await readdir(dir)).includes(`${foreign}.corrupt`));
});

/** A pid that is certainly not running: a child that already exited. */
function deadPid(): number {
  const r = spawnSync(process.execPath, ["-e", ""]);
  assert.ok(r.pid);
  return r.pid;
}

test("killed write (simulated): partial and truncated shards are never trusted; dead writers' partials are cleaned", async (t) => {
  const root = await tempRoot(t);
  const src = await openFeatureCache(path.join(root, "src"), KEY);
  await src.put([entry(1, 64, 32), entry(2, 64, 32), entry(3, 64, 32)]);
  await src.close();
  const [shard] = (await readdir(src.dir)).filter((n) => n.endsWith(".arrow"));
  const bytes = await readFile(path.join(src.dir, shard!));
  const half = bytes.subarray(0, Math.floor(bytes.length / 2));

  const dst = await openFeatureCache(root, KEY);
  await dst.close();
  const dead = path.join(dst.dir, `.tmp-${hostname()}-${deadPid()}-0badf00d.partial`);
  const live = path.join(dst.dir, `.tmp-${hostname()}-${process.pid}-0badf00d.partial`);
  const truncated = path.join(dst.dir, shard!); // a final name whose file was cut (e.g. disk trouble)
  await writeFile(dead, bytes); // even a complete file under a temp name is not trusted
  await writeFile(live, half);
  await writeFile(truncated, half);
  const c = await openFeatureCache(root, KEY);
  assert.equal(c.stats.cleaned, 1);
  assert.equal(c.stats.entries, 0, "nothing indexed");
  for (const i of [1, 2, 3]) assert.equal(await c.get(entry(i, 64, 32).sha), undefined);
  const names = await readdir(c.dir);
  assert.ok(!names.includes(path.basename(dead)), "the dead writer's partial is removed");
  assert.ok(names.includes(path.basename(live)), "a live writer's partial is left alone");
  assert.ok(names.includes(`${shard}.corrupt`), "the truncated shard is set aside");
  // The cache still works: recomputed entries are stored and read back.
  await c.put([entry(1, 64, 32)]);
  await c.close();
  const c2 = await openFeatureCache(root, KEY);
  assert.deepEqual(Array.from((await c2.get(entry(1, 64, 32).sha))!), Array.from(entry(1, 64, 32).tokens));
});

test("killed write (real): a writer SIGKILLed mid-flush leaves no entry a later run trusts; its partial is cleaned", async (t) => {
  const root = await tempRoot(t);
  const child = fileURLToPath(new URL("./feature_cache_child.js", import.meta.url));
  const dir = path.join(root, featureKeyHash(KEY));
  let caught = false;
  for (let attempt = 0; attempt < 5 && !caught; attempt++) {
    const p = spawn(process.execPath, [child, root, JSON.stringify(KEY)], {
      env: { ...process.env, VZT_FEATURE_CACHE_CHILD: "1" },
      stdio: "ignore",
    });
    const exited = new Promise((res) => p.on("exit", res));
    // wait until at least one shard is complete and the next is being written, then kill
    const deadline = Date.now() + 30_000;
    for (;;) {
      const names = await readdir(dir).catch(() => [] as string[]);
      const partial = names.find((n) => n.endsWith(".partial"));
      if (partial && names.some((n) => n.endsWith(".arrow")) && (await stat(path.join(dir, partial)).catch(() => undefined))?.size) {
        p.kill("SIGKILL");
        break;
      }
      if (Date.now() > deadline) {
        p.kill("SIGKILL");
        throw new Error("child wrote nothing in 30 s");
      }
      await new Promise((r) => setTimeout(r, 2));
    }
    await exited;
    caught = (await readdir(dir)).some((n) => n.endsWith(".partial"));
  }
  assert.ok(caught, "the kill landed while a partial shard existed");
  const c = await openFeatureCache(root, KEY);
  assert.ok(c.stats.cleaned >= 1, "partial of the dead writer removed");
  assert.ok(!(await readdir(dir)).some((n) => n.endsWith(".partial") || n.endsWith(".corrupt")));
  // Every trusted entry is exact; the entries of the killed shard are simply absent.
  const n = c.stats.entries;
  assert.ok(n >= 128 && n % 128 === 0, `whole shards only, got ${n} entries`);
  const all = await c.getMany(Array.from({ length: n + 128 }, (_, i) => childEntry(i).sha));
  all.forEach((e, i) => {
    if (i < n) {
      assert.ok(e, `entry ${i} present`);
      assert.deepEqual(e.shape, [CHILD_T, CHILD_C]);
      assert.equal(maxAbsDiff(e.tokens, childEntry(i).tokens), 0, `entry ${i} exact`);
    } else assert.equal(e, undefined, `entry ${i} of the killed shard absent`);
  });
});

for (const backend of ["wasm", "cpu"] as const) {
  test(`golden clip_vision_336 + visionzip 64: same tokens cached and uncached, dominant tokens = golden hidden_states[-2] (${backend})`, async (t) => {
    await setBackend(backend, { quiet: true });
    const root = await tempRoot(t);
    const tower = await loadVisionTower(V336);
    t.after(() => tower.dispose());
    const reducer = buildReducer("visionzip", { budget: 64 });
    const key = await makeFeatureKey({ source: V336, layer: -2, numLayers: tower.config.layers, reducer, preprocess: { mode: "none" } });
    const grid = tower.config.imageSize / tower.config.patchSize;
    let computed = 0;
    const compute = (px: tf.Tensor4D): tf.Tensor3D => {
      computed += px.shape[0];
      const v = tower.forward(px, { layer: -2 });
      try {
        return reducer.reduce({ hidden: v.hidden, clsAttention: v.clsAttention, keysMean: v.keysMean, gridSize: grid }).tokens;
      } finally {
        for (const x of Object.values(v)) x.dispose();
      }
    };
    const pv = (await readSafetensors(path.join(VEC, "pixel_values.safetensors"))).get("pixel_values")!; // [1, 3, 336, 336]
    const a = tf.tidy(() => tf.squeeze(pv, [0]) as tf.Tensor3D);
    const b = tf.tidy(() => tf.reverse(a, 2) as tf.Tensor3D); // mirrored: another image
    pv.dispose();
    t.after(() => {
      a.dispose();
      b.dispose();
    });
    const images = [
      { sha: imageSha256(await a.data()), pixelValues: a },
      { sha: imageSha256(await b.data()), pixelValues: b },
    ];
    // uncached reference
    const px = tf.stack([a, b]) as tf.Tensor4D;
    const direct = compute(px);
    px.dispose();
    const want = (await direct.data()) as Float32Array;
    assert.deepEqual(direct.shape, [2, 64, 32]);
    direct.dispose();
    computed = 0;

    const cache = await openFeatureCache(root, key);
    const batch = async (c: typeof cache) => {
      const before = tf.memory().numTensors;
      const out = await computeOrLoadFeatures(c, images, compute);
      assert.equal(tf.memory().numTensors, before + 1, "no tensor growth apart from the result");
      const got = (await out.data()) as Float32Array;
      out.dispose();
      return got;
    };
    assert.deepEqual(bytesOf(await batch(cache)), bytesOf(want), "first pass (computed) = uncached");
    assert.deepEqual(bytesOf(await batch(cache)), bytesOf(want), "second pass (cached) = uncached");
    await cache.close();
    const later = await openFeatureCache(root, key);
    assert.deepEqual(bytesOf(await batch(later)), bytesOf(want), "later run (from disk) = uncached");
    assert.equal(computed, 2, "the tower ran once per image");

    // Against openai/CLIP: VisionZip copies CLS and the 53 dominant patches of hidden_states[-2] unchanged.
    const px1 = tf.expandDims(a, 0) as tf.Tensor4D;
    const v = tower.forward(px1, { layer: -2 });
    px1.dispose();
    const r = reducer.reduce({ hidden: v.hidden, clsAttention: v.clsAttention, keysMean: v.keysMean, gridSize: grid });
    for (const x of Object.values(v)) x.dispose();
    r.tokens.dispose();
    const golden = readGoldenVector(path.join(VEC, "hidden_states_1.json")).data as Float32Array; // [1, 577, 32]
    const cached = (await later.get(images[0]!.sha))!; // [64, 32]
    let copied = 0;
    r.provenance[0]!.forEach((covers, tok) => {
      const isCls = covers.length === 0;
      const isDominant = covers.length === 1 && r.keptIndices![0]!.includes(covers[0]!);
      if (!isCls && !isDominant) return;
      const src = isCls ? 0 : covers[0]! + 1;
      const d = maxAbsDiff(cached.subarray(tok * 32, (tok + 1) * 32), golden.subarray(src * 32, (src + 1) * 32));
      assert.ok(d <= 1e-4, `token ${tok} (hidden row ${src}): max abs diff ${d}`);
      copied++;
    });
    assert.equal(copied, 54, "CLS + 53 dominant patches checked");
    await later.close();
  });
}
