// Feature cache for projector-only training (issue 4 §3). The vision tower and the reducer are frozen, so each
// image's reduced tokens [T, C] are computed once and later epochs and later runs read them back instead of running
// the tower. Layout under `root`:
//
//   <root>/<keyHash>/key.json                       the full FeatureKey (for humans; checked at open, see below)
//   <root>/<keyHash>/features-<time>-<pid>-<rand>.arrow   complete shards, append-only, never rewritten
//   <root>/<keyHash>/.tmp-<host>-<pid>-<rand>.partial     a shard being written (never read)
//
// keyHash = featureKeyHash(key) (train/feature_key.ts): any change of weights, layer, reducer params, preprocessing
// or dtype gives another folder, so stale entries are never hit. key.json must hold the same canonical key as the
// one opened, else openFeatureCache throws (a hash collision or a hand-edited folder: never mix entries).
//
// Shards are Arrow IPC streams, one row per record batch (a read touches only its own bytes), columns
// image_sha256: Utf8 (sha256 hex of the image bytes), tokens: Binary (float32 little-endian, row-major [T, C]),
// shape: List<Int32> ([T, C]), provenance: Utf8 (JSON number[][] from the reducer) or null. The schema metadata
// `vzt_feature_cache` = {format, keyHash, shas: [...]} lists the shard's entries in row order, so opening reads one
// small message and the last 8 bytes (the end-of-stream marker) per shard, never the bodies.
// Lookups: an in-memory index sha -> (shard, row); the first lookup in a shard reads its message headers and keeps
// it open (train/feature_shard.ts), every later one is a synchronous positioned read of that row's record batch
// parsed in place, its tokens copied once, straight into the caller's [B, T, C] buffer (computeOrLoadFeatures).
//
// Crash safety: put() buffers; flush() writes a shard to a `.tmp-*.partial` name, fsyncs it, renames it to its final
// name and fsyncs the folder. Only final names are indexed, so a run killed mid-write leaves nothing a later run
// trusts. At open, partial files of dead processes on this host (and of other hosts when older than a day) are
// deleted; those of live processes are left alone and ignored. A final shard whose header or rows cannot be read is
// renamed `*.corrupt` with a warning and its entries are recomputed. Values round-trip bit for bit.
// Several processes may share a folder: each writes its own shards; an entry written twice is read from the first
// shard in name order (both hold the same values for the same key).
import { randomBytes } from "node:crypto";
import { endianness, hostname } from "node:os";
import { mkdir, open, readdir, readFile, rename, rm, stat, writeFile } from "node:fs/promises";
import path from "node:path";
import { Binary, Field, Int32, List, Message, MessageHeader, Schema, Utf8 } from "apache-arrow";
import { ensureBackend, tf } from "../core/backend.js";
import { DataError } from "../core/errors.js";
import { warn } from "../core/log.js";
import type { PixelValues } from "../data/preprocess.js";
import { EOS, readAt } from "../data/ipc_index.js";
import { ArrowShardWriter } from "../data/write_shards.js";
import { canonicalJson, FEATURE_CACHE_FORMAT, featureKeyHash, type FeatureKey } from "./feature_key.js";
import { copyTokens, FeatureShard } from "./feature_shard.js";

export interface FeatureEntry {
  sha: string; // sha256 hex of the image bytes
  tokens: Float32Array; // [T, C] row-major
  shape: [number, number]; // [T, C]
  provenance?: number[][]; // [t] = patch indices token t covers
}

export interface FeatureCacheStats {
  hits: number; // lookups answered from the cache (disk or not yet flushed)
  misses: number;
  entries: number; // entries on disk plus pending
  shards: number; // complete shards indexed
  pending: number; // entries put but not yet flushed
  cleaned: number; // partial files of dead writers removed at open
}

export interface FeatureCacheOptions {
  /** flush() runs by itself once pending tokens reach this many bytes (default 256 MiB). */
  flushBytes?: number;
  /** ... or this many pending entries (default 4096). */
  flushEntries?: number;
}

const META_KEY = "vzt_feature_cache";
const KEY_JSON = "key.json";
const SHARD_RE = /^features-[0-9a-z]+-\d+-[0-9a-f]+\.arrow$/;
const PARTIAL_RE = /^\.tmp-(.+)-(\d+)-[0-9a-f]+\.partial$/;
const SHA_RE = /^[0-9a-f]{64}$/;
const STALE_FOREIGN_MS = 24 * 3600 * 1000;
const LITTLE_ENDIAN = endianness() === "LE";

function shardSchema(keyHash: string, shas: string[]): Schema {
  const fields = [
    new Field("image_sha256", new Utf8(), false),
    new Field("tokens", new Binary(), false),
    new Field("shape", new List(new Field("item", new Int32(), true)), false),
    new Field("provenance", new Utf8(), true),
  ];
  return new Schema(fields, new Map([[META_KEY, JSON.stringify({ format: FEATURE_CACHE_FORMAT, keyHash, shas })]]));
}

/** Opens (creating when absent) the cache folder of `key` under `root` and indexes its complete shards. */
export async function openFeatureCache(root: string, key: FeatureKey, opts: FeatureCacheOptions = {}): Promise<FeatureCache> {
  const keyHash = featureKeyHash(key); // validates the key
  const dir = path.join(root, keyHash);
  await mkdir(dir, { recursive: true });
  await checkOrWriteKeyJson(dir, keyHash, key);
  const cache = new FeatureCache(dir, keyHash, key, opts);
  await cache.load();
  return cache;
}

async function checkOrWriteKeyJson(dir: string, keyHash: string, key: FeatureKey): Promise<void> {
  const file = path.join(dir, KEY_JSON);
  const want = canonicalJson(key);
  let text: string | undefined;
  try {
    text = await readFile(file, "utf8");
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== "ENOENT") throw e;
  }
  if (text === undefined) {
    const tmp = path.join(dir, `.tmp-${hostname()}-${process.pid}-${randomBytes(4).toString("hex")}.partial`);
    await writeFile(tmp, JSON.stringify({ format: FEATURE_CACHE_FORMAT, keyHash, key: JSON.parse(want) }, null, 2) + "\n");
    await rename(tmp, file);
    return;
  }
  let got: { format?: unknown; key?: unknown };
  try {
    got = JSON.parse(text) as typeof got;
  } catch (e) {
    throw new DataError(`unreadable cache key (${(e as Error).message}); delete the folder to rebuild it`, { file });
  }
  const gotKey = got?.key === undefined ? "(none)" : canonicalJson(got.key);
  if (got?.format !== FEATURE_CACHE_FORMAT || gotKey !== want) {
    throw new DataError(
      `folder ${keyHash} holds features of another key (hash collision or edited folder): refusing to mix them.\n` +
        `  key.json: ${String(got?.format)} ${gotKey}\n  wanted:   ${FEATURE_CACHE_FORMAT} ${want}`,
      { file },
    );
  }
}

interface ShardRef {
  file: string;
  /** Entries in its entry list. */
  rows: number;
  /** Open for lookups (first lookup in it opens it; later ones read synchronously). */
  reader?: FeatureShard;
  opening?: Promise<FeatureShard>;
  dead?: boolean;
}

/** Shape and provenance of an entry read by readInto (its tokens went where `dest` said). */
interface ReadMeta {
  shape: [number, number];
  provenance?: number[][];
}

export class FeatureCache {
  private readonly shards: ShardRef[] = [];
  private readonly index = new Map<string, { shard: number; row: number }>();
  private readonly pending = new Map<string, FeatureEntry>();
  private pendingBytes = 0;
  private writing: Promise<void> = Promise.resolve();
  private closed = false;
  private counts = { hits: 0, misses: 0, cleaned: 0 };
  private readonly flushBytes: number;
  private readonly flushEntries: number;

  /** Use openFeatureCache. */
  constructor(readonly dir: string, readonly keyHash: string, readonly key: FeatureKey, opts: FeatureCacheOptions = {}) {
    this.flushBytes = opts.flushBytes ?? 256 * 1024 * 1024;
    this.flushEntries = opts.flushEntries ?? 4096;
  }

  get stats(): FeatureCacheStats {
    return {
      ...this.counts,
      entries: this.index.size + this.pending.size,
      shards: this.shards.filter((s) => !s.dead).length,
      pending: this.pending.size,
    };
  }

  /** @internal Cleans partial files of dead writers and indexes the complete shards (header message only). */
  async load(): Promise<void> {
    const names = (await readdir(this.dir)).sort();
    for (const name of names) {
      const m = PARTIAL_RE.exec(name);
      if (m && (await isAbandoned(path.join(this.dir, name), m[1]!, Number(m[2])))) {
        await rm(path.join(this.dir, name), { force: true });
        this.counts.cleaned++;
      }
    }
    for (const name of names.filter((n) => SHARD_RE.test(n))) {
      const file = path.join(this.dir, name);
      let shas: string[];
      try {
        shas = await readShardShas(file, this.keyHash);
      } catch (e) {
        await this.quarantine(file, e);
        continue;
      }
      this.addShard(file, shas);
    }
  }

  private addShard(file: string, shas: string[]): void {
    const s = this.shards.push({ file, rows: shas.length }) - 1;
    shas.forEach((sha, row) => {
      if (!this.index.has(sha)) this.index.set(sha, { shard: s, row });
    });
  }

  /** True when `sha` is stored or pending (does not count as a hit or miss). */
  has(sha: string): boolean {
    return this.index.has(sha) || this.pending.has(sha);
  }

  /** The tokens [T, C] of image `sha`, or undefined. */
  async get(sha: string): Promise<Float32Array | undefined> {
    return (await this.getMany([sha]))[0]?.tokens;
  }

  /** The entry of image `sha` (tokens, shape, provenance), or undefined. */
  async getEntry(sha: string): Promise<FeatureEntry | undefined> {
    return (await this.getMany([sha]))[0];
  }

  /** The tokens of image `sha` as a new tensor [T, C] (the caller disposes it), or undefined. */
  async getTensor(sha: string): Promise<tf.Tensor2D | undefined> {
    const e = await this.getEntry(sha);
    if (e) await ensureBackend();
    return e ? tf.tensor2d(e.tokens, e.shape, "float32") : undefined;
  }

  /** Entries for `shas` in order (undefined where missing). */
  async getMany(shas: readonly string[]): Promise<(FeatureEntry | undefined)[]> {
    const tokens: Float32Array[] = [];
    const meta = await this.readInto(shas, (k, T, C) => (tokens[k] = new Float32Array(T * C)), { provenance: true });
    return meta.map((m, k) => {
      if (!m) return undefined;
      const e: FeatureEntry = { sha: shas[k]!, tokens: tokens[k]!, shape: m.shape };
      if (m.provenance) e.provenance = m.provenance;
      return e;
    });
  }

  /**
   * @internal Reads the entries of `shas` (stored or pending), each straight into `dest(k, T, C)` (T * C floats);
   * returns their shapes (undefined where missing). After a shard's first lookup this never awaits: each entry is
   * one synchronous positioned read of its record batch (a few hundred bytes beyond the tokens). An error thrown by
   * `dest` propagates; a shard found unreadable is set aside and its entries count as missing.
   */
  async readInto(
    shas: readonly string[],
    dest: (k: number, T: number, C: number) => Float32Array,
    opts: { provenance?: boolean } = {},
  ): Promise<(ReadMeta | undefined)[]> {
    this.assertOpen();
    const out: (ReadMeta | undefined)[] = new Array(shas.length).fill(undefined);
    const byShard = new Map<number, { row: number; k: number }[]>();
    shas.forEach((sha, k) => {
      const p = this.pending.get(sha);
      if (p) {
        dest(k, p.shape[0], p.shape[1]).set(p.tokens);
        out[k] = { shape: [p.shape[0], p.shape[1]] };
        if (opts.provenance && p.provenance) out[k]!.provenance = p.provenance.map((r) => [...r]);
        return;
      }
      const at = this.index.get(sha);
      if (at) {
        const list = byShard.get(at.shard) ?? [];
        list.push({ row: at.row, k });
        byShard.set(at.shard, list);
      }
    });
    for (const [s, wants] of byShard) {
      const ref = this.shards[s]!;
      if (ref.dead) continue;
      try {
        const shard = (ref.reader ??= await (ref.opening ??= FeatureShard.open(ref.file, ref.rows)));
        for (const w of wants) {
          const v = shard.read(w.row, shas[w.k]!);
          const provenance = opts.provenance ? v.provenance() : undefined;
          copyTokens(v.tokens, dest(w.k, v.shape[0], v.shape[1]));
          out[w.k] = provenance ? { shape: v.shape, provenance } : { shape: v.shape };
        }
      } catch (e) {
        if (!(e instanceof DataError) || e.where.file !== ref.file) throw e;
        await this.dropShard(s, e);
        for (const w of wants) out[w.k] = undefined;
      }
    }
    for (const m of out) m ? this.counts.hits++ : this.counts.misses++;
    return out;
  }

  /** Sets an unreadable shard aside (renamed *.corrupt); its entries are recomputed. */
  private async dropShard(s: number, e: unknown): Promise<void> {
    const ref = this.shards[s]!;
    ref.dead = true;
    const reader = ref.reader ?? (await ref.opening?.catch(() => undefined));
    ref.reader = undefined;
    ref.opening = undefined;
    await reader?.close();
    await this.quarantine(ref.file, e);
    for (const [sha, at] of this.index) if (at.shard === s) this.index.delete(sha);
  }

  /**
   * Buffers entries for the next shard (tokens are copied); entries already stored or pending are skipped.
   * Flushes by itself once the pending size reaches flushBytes or flushEntries.
   */
  async put(entries: readonly FeatureEntry[]): Promise<void> {
    this.assertOpen();
    for (const e of entries) {
      checkEntry(e);
      if (this.has(e.sha)) continue;
      this.pending.set(e.sha, copyEntry(e));
      this.pendingBytes += e.tokens.byteLength;
    }
    if (this.pendingBytes >= this.flushBytes || this.pending.size >= this.flushEntries) await this.flush();
  }

  /** Writes every pending entry to one new shard (temp name, fsync, rename); a no-op with nothing pending. */
  flush(): Promise<void> {
    const next = this.writing.then(() => this.writeShard());
    this.writing = next.catch(() => undefined);
    return next;
  }

  /** Flushes and closes; later calls throw. */
  async close(): Promise<void> {
    if (this.closed) return;
    await this.flush();
    this.closed = true;
    for (const ref of this.shards) {
      const reader = ref.reader ?? (await ref.opening?.catch(() => undefined));
      ref.reader = ref.opening = undefined;
      await reader?.close();
    }
  }

  private async writeShard(): Promise<void> {
    const entries = [...this.pending.values()];
    if (!entries.length) return;
    const shas = entries.map((e) => e.sha);
    const rand = randomBytes(4).toString("hex");
    const tmp = path.join(this.dir, `.tmp-${hostname()}-${process.pid}-${rand}.partial`);
    const file = path.join(this.dir, `features-${Date.now().toString(36)}-${process.pid}-${rand}.arrow`);
    try {
      const w = await ArrowShardWriter.open(tmp, shardSchema(this.keyHash, shas), "stream");
      for (const e of entries) {
        await w.writeRows([{
          image_sha256: e.sha,
          tokens: float32ToBytes(e.tokens),
          shape: e.shape,
          provenance: e.provenance ? JSON.stringify(e.provenance) : null,
        }]);
      }
      await w.close();
      await fsyncPath(tmp, "r+");
      await rename(tmp, file);
      await fsyncPath(this.dir, "r");
    } catch (e) {
      await rm(tmp, { force: true });
      throw e;
    }
    this.addShard(file, shas);
    for (const e of entries) {
      this.pending.delete(e.sha);
      this.pendingBytes -= e.tokens.byteLength;
    }
  }

  private async quarantine(file: string, e: unknown): Promise<void> {
    warn(`feature cache: ${file} is unreadable (${(e as Error).message}); renamed *.corrupt, its entries will be recomputed`);
    await rename(file, `${file}.corrupt`).catch(() => undefined);
  }

  private assertOpen(): void {
    if (this.closed) throw new Error(`feature cache ${this.dir}: used after close()`);
  }
}

export interface FeatureCacheInfo {
  dir: string;
  keyHash: string;
  key: FeatureKey;
  shards: number;
  entries: number;
  bytes: number;
}

/** The cache folders under `root` with their keys and sizes (for `vzt cache ls`); unreadable folders are skipped. */
export async function listFeatureCaches(root: string): Promise<FeatureCacheInfo[]> {
  const out: FeatureCacheInfo[] = [];
  const names = await readdir(root).catch(() => [] as string[]);
  for (const keyHash of names.sort()) {
    const dir = path.join(root, keyHash);
    const text = await readFile(path.join(dir, KEY_JSON), "utf8").catch(() => undefined);
    if (text === undefined) continue;
    let key: FeatureKey;
    try {
      key = (JSON.parse(text) as { key: FeatureKey }).key;
    } catch {
      continue;
    }
    const info: FeatureCacheInfo = { dir, keyHash, key, shards: 0, entries: 0, bytes: 0 };
    const shas = new Set<string>();
    for (const name of (await readdir(dir)).filter((n) => SHARD_RE.test(n))) {
      const file = path.join(dir, name);
      const list = await readShardShas(file, keyHash).catch(() => undefined);
      if (!list) continue;
      info.shards++;
      info.bytes += (await stat(file)).size;
      for (const sha of list) shas.add(sha);
    }
    info.entries = shas.size;
    out.push(info);
  }
  return out;
}

/** A partial file is abandoned when its writer (same host) is dead, or (other host) it is over a day old. */
async function isAbandoned(file: string, host: string, pid: number): Promise<boolean> {
  if (host === hostname()) return !processAlive(pid);
  const st = await stat(file).catch(() => undefined);
  return st !== undefined && Date.now() - st.mtimeMs > STALE_FOREIGN_MS;
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === "EPERM";
  }
}

/** The entry list of a shard from its schema message (the first message of the stream). */
async function readShardShas(file: string, keyHash: string): Promise<string[]> {
  const fh = await open(file, "r");
  let schema: Schema;
  try {
    const pre = await readAt(fh, 0, 8);
    const dv = new DataView(pre.buffer, pre.byteOffset, pre.byteLength);
    const cont = pre.length >= 4 && dv.getInt32(0, true) === -1;
    const len = pre.length >= 8 ? (cont ? dv.getInt32(4, true) : dv.getInt32(0, true)) : -1;
    if (!(len > 0 && len < 1 << 30)) throw new DataError("not an Arrow IPC stream (bad first message length)", { file });
    const meta = await readAt(fh, cont ? 8 : 4, len);
    if (meta.length !== len) throw new DataError("truncated schema message", { file });
    const msg = Message.decode(meta);
    if (msg.headerType !== MessageHeader.Schema) throw new DataError("first message is not a schema", { file });
    schema = msg.header() as Schema;
    const size = (await fh.stat()).size;
    const tail = await readAt(fh, size - 8, 8);
    if (size < 16 || !tail.every((b, i) => b === EOS[i])) {
      throw new DataError("shard does not end with the end-of-stream marker (truncated)", { file });
    }
  } finally {
    await fh.close();
  }
  const text = schema.metadata.get(META_KEY);
  const meta = text ? (JSON.parse(text) as { format?: unknown; keyHash?: unknown; shas?: unknown }) : undefined;
  if (!meta || meta.format !== FEATURE_CACHE_FORMAT) throw new DataError(`no ${FEATURE_CACHE_FORMAT} metadata`, { file });
  if (meta.keyHash !== keyHash) throw new DataError(`shard belongs to key ${String(meta.keyHash)}, not ${keyHash}`, { file });
  const shas = meta.shas;
  if (!Array.isArray(shas) || !shas.every((s) => typeof s === "string" && SHA_RE.test(s))) {
    throw new DataError("entry list in the schema metadata is not a list of sha256 hex strings", { file });
  }
  return shas as string[];
}

function checkEntry(e: FeatureEntry): void {
  if (typeof e.sha !== "string" || !SHA_RE.test(e.sha)) {
    throw new DataError(`feature cache: image sha ${JSON.stringify(e.sha)} is not a lowercase sha256 hex string`);
  }
  const [T, C] = e.shape ?? [];
  if (!(Number.isInteger(T) && Number.isInteger(C) && T! >= 1 && C! >= 1 && e.shape.length === 2)) {
    throw new DataError(`feature cache: entry ${e.sha}: shape must be [T, C] of positive integers, got ${JSON.stringify(e.shape)}`);
  }
  if (!(e.tokens instanceof Float32Array) || e.tokens.length !== T! * C!) {
    throw new DataError(`feature cache: entry ${e.sha}: tokens must be a Float32Array of ${T! * C!} values, got ${e.tokens?.length}`);
  }
}

function copyEntry(e: FeatureEntry): FeatureEntry {
  const c: FeatureEntry = { sha: e.sha, tokens: new Float32Array(e.tokens), shape: [e.shape[0], e.shape[1]] };
  if (e.provenance) c.provenance = e.provenance.map((r) => [...r]);
  return c;
}

/** Little-endian bytes of a Float32Array (a view on little-endian hosts). */
function float32ToBytes(a: Float32Array): Uint8Array {
  if (LITTLE_ENDIAN) return new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
  const out = new Uint8Array(a.byteLength);
  const dv = new DataView(out.buffer);
  a.forEach((x, i) => dv.setFloat32(i * 4, x, true));
  return out;
}

async function fsyncPath(p: string, flags: "r" | "r+"): Promise<void> {
  const fh = await open(p, flags);
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

// ---- batches through the cache ----------------------------------------------------------------------------------

export interface FeatureImage {
  sha: string; // imageSha256 of the image bytes
  /**
   * pixel values [3, H, W]: a tensor (the caller keeps and disposes it), a Float32 array from preprocessToFloat32,
   * or a function making one (called only for misses, so cached images are never decoded).
   */
  pixelValues: tf.Tensor3D | PixelValues | (() => PixelValues | Promise<PixelValues>);
}

/**
 * Reduced tokens [B, T, C] for `images`, in order: cached entries are read, `compute` runs once on the misses
 * (pixel values [M, 3, H, W] -> reduced tokens [M, T, C]; duplicates within the batch computed once) and its
 * output is stored. Returns one new tensor; disposes everything else it made and `compute`'s output.
 */
export async function computeOrLoadFeatures(
  cache: FeatureCache,
  images: readonly FeatureImage[],
  compute: (pixelValues: tf.Tensor4D) => tf.Tensor3D,
): Promise<tf.Tensor3D> {
  if (!images.length) throw new DataError("computeOrLoadFeatures: empty batch");
  await ensureBackend();
  const B = images.length;
  const shas = images.map((im) => im.sha);
  // Every image's tokens land in one [B, T, C] buffer: cached ones read straight into it, computed ones copied in.
  let buf: Float32Array | undefined;
  let first = "";
  let T = 0;
  let C = 0;
  const slot = (k: number, t: number, c: number): Float32Array => {
    if (!buf) {
      [T, C, first] = [t, c, shas[k]!];
      buf = new Float32Array(B * T * C);
    } else if (t !== T || c !== C) {
      throw new DataError(`computeOrLoadFeatures: image ${shas[k]} has tokens [${t},${c}], image ${first} has [${T}, ${C}]`);
    }
    return buf.subarray(k * T * C, (k + 1) * T * C);
  };
  const found = await cache.readInto(shas, slot);
  const missIdx: number[] = [];
  const firstOf = new Map<string, number>(); // sha -> its first miss position
  images.forEach((im, i) => {
    if (!found[i] && !firstOf.has(im.sha)) {
      firstOf.set(im.sha, missIdx.length);
      missIdx.push(i);
    }
  });
  if (missIdx.length) {
    const pvs = await Promise.all(missIdx.map((i) => pixelsOf(images[i]!.pixelValues)));
    const made: tf.Tensor[] = [];
    let px: tf.Tensor4D | undefined;
    let out: tf.Tensor3D | undefined;
    let data: Float32Array;
    let mT: number, mC: number;
    try {
      const parts = pvs.map((p) => {
        if (p instanceof tf.Tensor) return p;
        const t = tf.tensor3d(p.data, p.shape, "float32");
        made.push(t);
        return t;
      });
      px = tf.stack(parts) as tf.Tensor4D; // [M, 3, H, W]
      out = compute(px); // [M, T, C]
      if (out.rank !== 3 || out.shape[0] !== missIdx.length) {
        throw new DataError(`computeOrLoadFeatures: compute returned shape [${out.shape}], expected [${missIdx.length}, T, C]`);
      }
      [, mT, mC] = out.shape;
      data = (await out.data()) as Float32Array;
    } finally {
      for (const t of made) t.dispose();
      px?.dispose();
      out?.dispose();
    }
    const n = mT * mC;
    images.forEach((im, i) => {
      const m = found[i] ? undefined : firstOf.get(im.sha);
      if (m !== undefined) slot(i, mT, mC).set(data.subarray(m * n, (m + 1) * n));
    });
    await cache.put(missIdx.map((i, m): FeatureEntry => ({ sha: shas[i]!, tokens: data.subarray(m * n, (m + 1) * n), shape: [mT, mC] })));
  }
  return tf.tensor3d(buf!, [B, T, C]);
}

async function pixelsOf(p: FeatureImage["pixelValues"]): Promise<tf.Tensor3D | PixelValues> {
  return typeof p === "function" ? await p() : p;
}
