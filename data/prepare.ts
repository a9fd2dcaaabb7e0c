// `vzt prepare`: LLaVA data JSON / JSONL + an image folder -> a datasets save_to_disk folder of Arrow shards with the
// image bytes embedded ({id: string, image: Image struct<bytes, path>, conversations: list<struct<from, value>>}).
//
// - Input is streamed (data/json_records.ts): JSONL line by line, JSON arrays element by element, so memory is one
//   record plus the records in flight (`concurrency`, default 16) plus one 100-row record batch being written.
// - Image paths are resolved under the image root and never outside it: absolute paths and `..` that leave the root
//   are refused before touching the disk, and the realpath (symlinks resolved) must still lie under the root's
//   realpath; the file is then opened with O_NOFOLLOW.
// - Every written record passes the same checks the training reader applies (toConversationRecord with
//   LLAVA_MAPPING), and its image is sniffed (JPEG / PNG / WebP, what data/image.ts decodes) and header-checked
//   (sharp metadata + end marker: catches truncated files) or, with `verify: "decode"`, fully decoded.
// - Bad records: `onError: "skip"` (default) drops them and counts them by reason with the first locations;
//   "raise" throws a PrepareError (a DataError naming the input file, line, record index, id and image path).
// - The stored Image `path` is the record's relative path (datasets itself keeps only the basename).
// - Output is deterministic: same input and image files -> byte-identical shards.
import { constants } from "node:fs";
import { open, readdir, realpath, rm, stat } from "node:fs/promises";
import path from "node:path";
import sharp from "sharp";
import { ConfigError, DataError } from "../core/errors.js";
import { formatBytes, formatDuration, Progress } from "../core/log.js";
import type { HfFeatures } from "./hf_datasets.js";
import { DATASET_INFO_JSON, STATE_JSON } from "./hf_datasets.js";
import { decodeImage, sniffImageFormat } from "./image.js";
import { readJsonRecords } from "./json_records.js";
import type { JsonRecord } from "./json_records.js";
import { LLAVA_MAPPING, toConversationRecord } from "./records.js";
import { RowError } from "./skip_report.js";
import type { OnError } from "./skip_report.js";
import { writeDatasetFolder } from "./write_shards.js";
import type { Row } from "./write_shards.js";

const str = { dtype: "string", _type: "Value" };

/** Features of a prepared LLaVA dataset (conversations as list<struct<from: string, value: string>>). */
export const LLAVA_PREPARED_FEATURES: HfFeatures = {
  id: str,
  image: { _type: "Image" },
  conversations: { feature: { from: str, value: str }, _type: "List" },
};

export type PrepareReason =
  | "bad JSON"
  | "not an object"
  | "missing conversations"
  | "empty conversation"
  | "no assistant turn"
  | "missing <image>"
  | "<image> without image"
  | "wrong type"
  | "bad value"
  | "image outside root"
  | "missing image"
  | "corrupt image";

export interface PrepareOptions {
  /** LLaVA data file: a JSON array (.json) or JSON Lines (.jsonl / .ndjson; a .json starting with "{" is read as lines). */
  input: string;
  /** Folder the records' relative `image` paths are resolved in. */
  imageRoot: string;
  /** Output save_to_disk folder. */
  out: string;
  /** Target shard size in bytes (a shard closes after the 100-row batch that reaches it). Default 500 MB. */
  shardBytes?: number;
  /** "skip" (default): drop bad records and report them; "raise": stop at the first with a PrepareError. */
  onError?: OnError;
  /** Split name written to state.json / dataset_info.json (default "train"). */
  split?: string;
  /** Show a progress bar on stderr. Default false. */
  progress?: boolean;
  /** "header" (default): sniff + header parse + end-marker check; "decode": full decode (~4 ms per image). */
  verify?: "header" | "decode";
  /** Replace an existing saved dataset in `out`. Default false. */
  overwrite?: boolean;
  /** Records whose images are read and checked at the same time. Default 16. */
  concurrency?: number;
}

/** Where and why a record was skipped. */
export interface PrepareSkip {
  reason: PrepareReason;
  message: string;
  /** 1-based line of the input where the record starts. */
  line: number;
  /** 0-based record index in the input. */
  index: number;
  id?: string;
  image?: string;
}

export interface PrepareSummary {
  input: string;
  imageRoot: string;
  out: string;
  split: string;
  /** Records read from the input. */
  records: number;
  written: number;
  withImage: number;
  textOnly: number;
  skipped: number;
  skippedByReason: Partial<Record<PrepareReason, number>>;
  /** The first 20 skipped records. */
  firstSkipped: PrepareSkip[];
  /** Shard files, in order. */
  shards: string[];
  /** Bytes of all shards. */
  bytes: number;
  /** Bytes of the embedded images. */
  imageBytes: number;
  seconds: number;
}

/** A bad record in `onError: "raise"` mode: names the input file, line, record index, id and image path. */
export class PrepareError extends DataError {
  constructor(readonly skip: PrepareSkip, file: string) {
    const id = skip.id !== undefined ? `, id ${JSON.stringify(skip.id)}` : "";
    const image = skip.image !== undefined ? `, image ${JSON.stringify(skip.image)}` : "";
    super(`line ${skip.line}${id}${image}: ${skip.reason}: ${skip.message}`, { file, row: skip.index });
    this.name = "PrepareError";
  }
}

type Outcome =
  | { kind: "row"; row: Row; imageBytes: number }
  | { kind: "skip"; skip: PrepareSkip }
  | { kind: "fatal"; error: unknown };

const KEEP_FIRST = 20;

/** Converts a LLaVA data file and its images into a save_to_disk folder; returns counts, skips and shard files. */
export async function prepare(opts: PrepareOptions): Promise<PrepareSummary> {
  const t0 = performance.now();
  const input = path.resolve(opts.input);
  const out = path.resolve(opts.out);
  const onError = opts.onError ?? "skip";
  const split = opts.split ?? "train";
  const verify = opts.verify ?? "header";
  const concurrency = Math.max(1, opts.concurrency ?? 16);
  const shardBytes = opts.shardBytes ?? 500e6;
  const problems = [
    onError !== "skip" && onError !== "raise" ? `onError: "skip" or "raise", got ${JSON.stringify(onError)}` : "",
    verify !== "header" && verify !== "decode" ? `verify: "header" or "decode", got ${JSON.stringify(verify)}` : "",
    !(shardBytes > 0 && Number.isFinite(shardBytes)) ? `shardBytes: a positive number of bytes, got ${shardBytes}` : "",
  ].filter(Boolean);
  if (problems.length) throw new ConfigError(problems);
  const root = await imageRootReal(opts.imageRoot);
  const inputSize = await fileSize(input);

  const summary: PrepareSummary = {
    input, imageRoot: root, out, split, records: 0, written: 0, withImage: 0, textOnly: 0, skipped: 0,
    skippedByReason: {}, firstSkipped: [], shards: [], bytes: 0, imageBytes: 0, seconds: 0,
  };
  const bar = opts.progress ? new Progress({ total: inputSize, label: "prepare", bytes: true }) : undefined;
  let bytesRead = 0;
  let raised: PrepareError | undefined;

  async function* records(): AsyncGenerator<JsonRecord> {
    for await (const r of readJsonRecords(input)) {
      bytesRead = r.bytesRead;
      yield r;
    }
  }

  async function* rows(): AsyncGenerator<Row> {
    for await (const o of mapOrdered(records(), (r) => processRecord(r, root, verify).catch(fatal), concurrency)) {
      summary.records++;
      if (o.kind === "fatal") throw o.error;
      if (o.kind === "skip") {
        if (onError === "raise") {
          raised = new PrepareError(o.skip, input); // end the stream so the writer closes its files, then throw
          return;
        }
        summary.skipped++;
        summary.skippedByReason[o.skip.reason] = (summary.skippedByReason[o.skip.reason] ?? 0) + 1;
        if (summary.firstSkipped.length < KEEP_FIRST) summary.firstSkipped.push(o.skip);
      } else {
        summary.written++;
        if (o.imageBytes > 0) summary.withImage++;
        else summary.textOnly++;
        summary.imageBytes += o.imageBytes;
        yield o.row;
      }
      bar?.update(Math.min(bytesRead, inputSize - 1), `${summary.records} records, ${recordRate(summary.records, t0)}/s, ${summary.skipped} skipped`);
    }
  }

  let result;
  try {
    result = await writeDatasetFolder(out, LLAVA_PREPARED_FEATURES, rows(), {
      shardBytes,
      split,
      overwrite: opts.overwrite ?? false,
    });
  } catch (e) {
    await removePartials(out);
    throw e;
  }
  if (raised) {
    for (const f of [...result.shards.map((x) => x.file), path.join(out, STATE_JSON), path.join(out, DATASET_INFO_JSON)]) await rm(f, { force: true });
    throw raised;
  }
  summary.shards = result.shards.map((s) => s.file);
  summary.bytes = result.shards.reduce((a, s) => a + s.bytes, 0);
  summary.seconds = (performance.now() - t0) / 1000;
  bar?.finish(`${summary.records} records, ${recordRate(summary.records, t0)}/s, ${summary.skipped} skipped`);
  return summary;
}

/**
 * A size as datasets' max_shard_size writes it: "500MB" (10^6), "1GB", "64MiB" (2^20), "4096", "1.5GB" -> bytes.
 * ConfigError on anything else.
 */
export function parseByteSize(text: string): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([KMGT]i?B|B)?\s*$/i.exec(text);
  const units: Record<string, number> = {
    b: 1, kb: 1e3, mb: 1e6, gb: 1e9, tb: 1e12, kib: 2 ** 10, mib: 2 ** 20, gib: 2 ** 30, tib: 2 ** 40,
  };
  const n = m ? Number(m[1]) * (units[(m[2] ?? "b").toLowerCase()] ?? NaN) : NaN;
  if (!(n > 0) || !Number.isFinite(n)) throw new ConfigError([`shard size: expected e.g. 500MB, 1GB, 64MiB or a byte count, got ${JSON.stringify(text)}`]);
  return Math.round(n);
}

/** Multi-line text of a summary, for the CLI. */
export function formatPrepareSummary(s: PrepareSummary): string {
  const lines = [
    `prepared ${s.input} -> ${s.out} (split "${s.split}")`,
    `  records in ${s.records}, written ${s.written} (${s.withImage} with image, ${s.textOnly} text-only), skipped ${s.skipped}`,
  ];
  const reasons = Object.entries(s.skippedByReason).map(([r, n]) => `${r} ${n}`);
  if (reasons.length) lines.push(`  skipped by reason: ${reasons.join(", ")}`);
  for (const k of s.firstSkipped) {
    const id = k.id !== undefined ? ` id ${JSON.stringify(k.id)}` : "";
    const image = k.image !== undefined ? ` image ${JSON.stringify(k.image)}` : "";
    lines.push(`    - line ${k.line} (record ${k.index})${id}${image}: ${k.reason}: ${k.message}`);
  }
  if (s.skipped > s.firstSkipped.length) lines.push(`    ... and ${s.skipped - s.firstSkipped.length} more`);
  lines.push(`  ${s.shards.length} shard(s), ${formatBytes(s.bytes)} (images ${formatBytes(s.imageBytes)}), ` +
    `${formatDuration(s.seconds)} (${s.seconds > 0 ? (s.records / s.seconds).toFixed(1) : "-"} records/s)`);
  return lines.join("\n");
}

// ---------------------------------------------------------------- one record

async function processRecord(rec: JsonRecord, root: string, verify: "header" | "decode"): Promise<Outcome> {
  const at = { line: rec.line, index: rec.index };
  const skip = (reason: PrepareReason, message: string, id?: string, image?: string): Outcome => ({
    kind: "skip",
    skip: { reason, message, ...at, ...(id !== undefined ? { id } : {}), ...(image !== undefined ? { image } : {}) },
  });
  if (rec.error !== undefined) return skip("bad JSON", rec.error);
  const v = rec.value;
  if (!v || typeof v !== "object" || Array.isArray(v)) return skip("not an object", `record is ${Array.isArray(v) ? "a list" : JSON.stringify(v)?.slice(0, 40)}`);
  const o = v as Record<string, unknown>;

  let id: string;
  if (typeof o.id === "string") id = o.id;
  else if (typeof o.id === "number" && Number.isFinite(o.id)) id = String(o.id);
  else if (o.id === undefined || o.id === null) id = String(rec.index);
  else return skip("wrong type", `"id" must be a string or number, got ${typeof o.id}`);

  const image = o.image;
  if (image !== undefined && image !== null && (typeof image !== "string" || image === "")) {
    return skip("wrong type", `"image" must be a non-empty relative path string, got ${JSON.stringify(image)?.slice(0, 60)}`, id);
  }
  const imagePath = image as string | undefined | null ?? undefined;
  if (o.conversations === undefined || o.conversations === null) {
    const keys = Object.keys(o).join(", ");
    return skip("missing conversations", `no "conversations" list (keys: ${keys})`, id, imagePath);
  }

  // The training reader's checks: turns, roles, an assistant turn, <image> tokens vs images.
  let turns;
  try {
    const where = { shard: 0, file: "", batch: 0, row: rec.index };
    turns = toConversationRecord({ id, image: imagePath ?? null, conversations: o.conversations }, LLAVA_MAPPING, where).conversations;
  } catch (e) {
    if (!(e instanceof RowError)) return { kind: "fatal", error: e };
    return skip(rowReason(e.reason), detailOf(e), id, imagePath);
  }
  const conversations = turns.map((t) => ({ from: t.from, value: t.value }));
  if (imagePath === undefined) return { kind: "row", row: { id, image: null, conversations }, imageBytes: 0 };

  const loaded = await loadImage(root, imagePath, verify);
  if ("reason" in loaded) return skip(loaded.reason, loaded.message, id, imagePath);
  return { kind: "row", row: { id, image: { bytes: loaded.bytes, path: imagePath }, conversations }, imageBytes: loaded.bytes.length };
}

const fatal = (error: unknown): Outcome => ({ kind: "fatal", error });

function rowReason(r: string): PrepareReason {
  switch (r) {
    case "empty conversation":
    case "no assistant turn":
    case "missing <image>":
    case "<image> without image":
    case "wrong type":
      return r;
    default:
      return "bad value";
  }
}

/** The RowError's detail without its location prefix and reason ("...: reason: detail" -> "detail"). */
function detailOf(e: RowError): string {
  const key = `${e.reason}: `;
  const i = e.message.indexOf(key);
  return i >= 0 ? e.message.slice(i + key.length) : e.message;
}

// ---------------------------------------------------------------- images

type Loaded = { bytes: Uint8Array } | { reason: PrepareReason; message: string };

/** The root's realpath; DataError when it is not a folder. */
async function imageRootReal(dir: string): Promise<string> {
  try {
    const real = await realpath(dir);
    if (!(await stat(real)).isDirectory()) throw new Error("not a folder");
    return real;
  } catch (e) {
    throw new DataError(`image root is not a readable folder: ${(e as Error).message}`, { file: dir });
  }
}

/**
 * Resolves `rel` under the real image root, refusing anything outside it (absolute paths, `..` escapes, symlinks
 * whose target lies outside). Returns the real path of the file, or why not.
 */
export async function resolveUnderRoot(root: string, rel: string): Promise<{ file: string } | { reason: PrepareReason; message: string }> {
  if (rel.includes("\0")) return { reason: "image outside root", message: "path contains a NUL byte" };
  if (path.isAbsolute(rel) || /^[A-Za-z]:[\\/]/.test(rel) || rel.startsWith("\\\\")) {
    return { reason: "image outside root", message: "absolute path (image paths are relative to the image root)" };
  }
  const joined = path.resolve(root, rel);
  if (!inside(root, joined)) return { reason: "image outside root", message: "path leaves the image root (..)" };
  let real: string;
  try {
    real = await realpath(joined);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === "ENOENT" || code === "ENOTDIR") return { reason: "missing image", message: "no such file under the image root" };
    return { reason: "missing image", message: `cannot resolve: ${code ?? (e as Error).message}` };
  }
  if (!inside(root, real)) return { reason: "image outside root", message: "a symlink on the path points outside the image root" };
  return { file: real };
}

function inside(root: string, p: string): boolean {
  const r = path.relative(root, p);
  return r !== "" && r !== ".." && !r.startsWith(`..${path.sep}`) && !path.isAbsolute(r);
}

async function loadImage(root: string, rel: string, verify: "header" | "decode"): Promise<Loaded> {
  const resolved = await resolveUnderRoot(root, rel);
  if ("reason" in resolved) return resolved;
  let bytes: Uint8Array;
  try {
    const fh = await open(resolved.file, constants.O_RDONLY | constants.O_NOFOLLOW);
    try {
      const st = await fh.stat();
      if (!st.isFile()) return { reason: "missing image", message: "not a regular file" };
      bytes = new Uint8Array(await fh.readFile());
    } finally {
      await fh.close();
    }
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === "ELOOP") return { reason: "image outside root", message: "the file changed into a symlink while reading" };
    return { reason: "missing image", message: `cannot read: ${code ?? (e as Error).message}` };
  }
  const why = await checkImage(bytes, verify);
  return why === undefined ? { bytes } : { reason: "corrupt image", message: why };
}

/** Why `bytes` is not a usable JPEG / PNG / WebP, or undefined when it is. */
export async function checkImage(bytes: Uint8Array, verify: "header" | "decode" = "header"): Promise<string | undefined> {
  const format = sniffImageFormat(bytes);
  if (!format) {
    const head = Array.from(bytes.subarray(0, 8), (b) => b.toString(16).padStart(2, "0")).join(" ");
    return `not JPEG, PNG or WebP (${bytes.length} bytes, starting "${head}")`;
  }
  if (verify === "decode") {
    try {
      await decodeImage(bytes);
      return undefined;
    } catch (e) {
      return (e as Error).message;
    }
  }
  try {
    const meta = await sharp(bytes).metadata();
    if (!meta.width || !meta.height) return `${format.toUpperCase()} header has no size`;
  } catch (e) {
    return `${format.toUpperCase()} header unreadable: ${((e as Error).message ?? "").split("\n")[0]}`;
  }
  if (!hasEndMarker(bytes, format)) return `${format.toUpperCase()} is truncated (no end marker; ${bytes.length} bytes)`;
  return undefined;
}

/** JPEG: an EOI (FF D9) in the last 4 KiB; PNG: an IEND chunk in the last 4 KiB; WebP: the RIFF size fits the file. */
function hasEndMarker(b: Uint8Array, format: "jpeg" | "png" | "webp"): boolean {
  const from = Math.max(0, b.length - 4096);
  if (format === "jpeg") {
    for (let i = b.length - 2; i >= from; i--) if (b[i] === 0xff && b[i + 1] === 0xd9) return true;
    return false;
  }
  if (format === "png") {
    for (let i = b.length - 4; i >= from; i--) if (b[i] === 0x49 && b[i + 1] === 0x45 && b[i + 2] === 0x4e && b[i + 3] === 0x44) return true;
    return false;
  }
  const riff = new DataView(b.buffer, b.byteOffset, b.byteLength).getUint32(4, true);
  return riff + 8 <= b.length;
}

// ---------------------------------------------------------------- helpers

/** fn over an async source with up to k calls in flight, results in source order (a rejection surfaces in order). */
export async function* mapOrdered<T, R>(src: AsyncIterable<T>, fn: (t: T) => Promise<R>, k: number): AsyncGenerator<R> {
  const queue: Promise<R>[] = [];
  for await (const t of src) {
    const p = fn(t);
    p.catch(() => undefined); // handled when its turn comes; avoids an unhandled rejection while it waits
    queue.push(p);
    if (queue.length >= k) yield await queue.shift()!;
  }
  while (queue.length) yield await queue.shift()!;
}

async function fileSize(file: string): Promise<number> {
  try {
    const st = await stat(file);
    if (!st.isFile()) throw new Error("not a file");
    return st.size;
  } catch (e) {
    throw new DataError(`cannot read input: ${(e as Error).message}`, { file });
  }
}

function recordRate(n: number, t0: number): string {
  const s = (performance.now() - t0) / 1000;
  return s > 0 ? (n / s).toFixed(n / s < 10 ? 2 : 0) : "-";
}

/** Removes the `.data-NNNNN.arrow.partial` files an interrupted write leaves (so a rerun does not need overwrite). */
async function removePartials(dir: string): Promise<void> {
  let names: string[];
  try {
    names = await readdir(dir);
  } catch {
    return;
  }
  for (const n of names) if (/^\.data-\d{5}\.arrow\.partial$/.test(n)) await rm(path.join(dir, n), { force: true });
}
