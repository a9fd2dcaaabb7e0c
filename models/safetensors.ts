// safetensors: 8-byte little-endian header length N, N bytes of UTF-8 JSON, then the tensor data.
// The reader validates like the reference Rust crate (safetensors/src/tensor.rs) and reads each tensor
// by offset, so a multi-GB file is never copied whole into memory. Every error names the file and tensor.
import { open } from "node:fs/promises";
import { writeFileAtomic } from "../core/atomic.js";
import { ensureBackend, tf } from "../core/backend.js";
import { WeightsError } from "../core/errors.js";

/** Bits per element of every dtype the format defines. */
export const DTYPE_BITS: Readonly<Record<string, number>> = {
  BOOL: 8, F4: 4, F6_E2M3: 6, F6_E3M2: 6, U8: 8, I8: 8, F8_E5M2: 8, F8_E4M3: 8, F8_E8M0: 8,
  F8_E4M3FNUZ: 8, F8_E5M2FNUZ: 8, I16: 16, U16: 16, F16: 16, BF16: 16, I32: 32, U32: 32, F32: 32,
  C64: 64, F64: 64, I64: 64, U64: 64,
};

export const MAX_HEADER_BYTES = 100_000_000;

export interface TensorInfo {
  name: string;
  dtype: string;
  shape: number[];
  /** Byte offsets relative to the start of the data section. */
  begin: number;
  end: number;
}

export interface SafetensorsHeader {
  file: string;
  /** Absolute byte offset where tensor data begins (8 + N). */
  dataStart: number;
  tensors: Map<string, TensorInfo>;
  metadata: Record<string, string>;
}

const fail = (file: string, msg: string, tensor?: string): never => {
  throw new WeightsError(`${file}${tensor !== undefined ? `: tensor "${tensor}"` : ""}: ${msg}`, file, tensor);
};

/** Header length N from the first 8 bytes, bounded by the format limit and the file size. */
export function headerLength(first8: Uint8Array, fileSize: number, file: string): number {
  if (fileSize < 8 || first8.length < 8) fail(file, `file is ${fileSize} bytes, too small for a safetensors header (HeaderTooSmall)`);
  const n = new DataView(first8.buffer, first8.byteOffset, 8).getBigUint64(0, true);
  if (n > BigInt(MAX_HEADER_BYTES)) fail(file, `header length ${n} exceeds the ${MAX_HEADER_BYTES}-byte limit (HeaderTooLarge)`);
  if (8n + n > BigInt(fileSize)) fail(file, `header length ${n} runs past the end of the ${fileSize}-byte file (InvalidHeaderLength)`);
  return Number(n);
}

/**
 * Parses and validates the JSON header (the N bytes after the length prefix).
 * Pure: used by the file reader and by the fuzz test.
 */
export function parseHeader(headerBytes: Uint8Array, fileSize: number, file: string): SafetensorsHeader {
  let text: string;
  try {
    text = new TextDecoder("utf-8", { fatal: true }).decode(headerBytes);
  } catch {
    return fail(file, "header is not valid UTF-8 (InvalidHeader)");
  }
  if (!text.startsWith("{")) fail(file, "header must start with '{' (InvalidHeaderStart)");
  const dup = findDuplicateKey(text);
  if (dup !== undefined) fail(file, `header has the key "${dup}" twice (InvalidHeaderDeserialization)`);
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    return fail(file, `header is not valid JSON: ${(e as Error).message} (InvalidHeaderDeserialization)`);
  }
  if (json === null || typeof json !== "object" || Array.isArray(json)) fail(file, "header must be a JSON object");
  const dataStart = 8 + headerBytes.length;
  const metadata: Record<string, string> = {};
  const tensors: TensorInfo[] = [];
  for (const [name, raw] of Object.entries(json as Record<string, unknown>)) {
    if (name === "__metadata__") {
      if (raw === null || typeof raw !== "object" || Array.isArray(raw)) fail(file, "__metadata__ must be an object of strings");
      for (const [k, v] of Object.entries(raw as Record<string, unknown>)) {
        if (typeof v !== "string") fail(file, `__metadata__.${k} must be a string, got ${typeof v}`);
        metadata[k] = v as string;
      }
      continue;
    }
    tensors.push(parseTensorInfo(name, raw, file));
  }
  // Tensors sorted by offsets must tile the data section exactly: no gaps, no overlaps, nothing after.
  tensors.sort((a, b) => a.begin - b.begin || a.end - b.end);
  let cursor = 0;
  for (const t of tensors) {
    if (t.begin !== cursor) {
      fail(file, `data_offsets [${t.begin}, ${t.end}] ${t.begin < cursor ? "overlap the previous tensor" : `leave a gap after byte ${cursor}`} (InvalidOffset)`, t.name);
    }
    const bits = BigInt(DTYPE_BITS[t.dtype]!);
    const count = t.shape.reduce((a, d) => a * BigInt(d), 1n);
    const totalBits = count * bits;
    if (totalBits % 8n !== 0n) fail(file, `${t.dtype} x [${t.shape}] is not a whole number of bytes (MisalignedSlice)`, t.name);
    const want = totalBits / 8n;
    if (want !== BigInt(t.end - t.begin)) {
      fail(file, `shape [${t.shape}] x ${t.dtype} needs ${want} bytes but data_offsets [${t.begin}, ${t.end}] span ${t.end - t.begin} (TensorInvalidInfo)`, t.name);
    }
    cursor = t.end;
  }
  if (dataStart + cursor !== fileSize) {
    fail(file, `tensor data ends at byte ${dataStart + cursor} but the file has ${fileSize} bytes (MetadataIncompleteBuffer)`);
  }
  return { file, dataStart, tensors: new Map(tensors.map((t) => [t.name, t])), metadata };
}

function parseTensorInfo(name: string, raw: unknown, file: string): TensorInfo {
  if (raw === null || typeof raw !== "object" || Array.isArray(raw)) return fail(file, "entry must be an object {dtype, shape, data_offsets}", name);
  const r = raw as Record<string, unknown>;
  for (const k of Object.keys(r)) {
    if (k !== "dtype" && k !== "shape" && k !== "data_offsets") fail(file, `unknown field "${k}"`, name);
  }
  const { dtype, shape, data_offsets: offsets } = r;
  if (typeof dtype !== "string" || !(dtype in DTYPE_BITS)) fail(file, `unknown dtype ${JSON.stringify(dtype)}; known: ${Object.keys(DTYPE_BITS).join(", ")}`, name);
  const isUint = (v: unknown): v is number => typeof v === "number" && Number.isSafeInteger(v) && v >= 0;
  if (!Array.isArray(shape) || !shape.every(isUint)) fail(file, `shape must be a list of non-negative integers, got ${JSON.stringify(shape)}`, name);
  if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every(isUint)) {
    fail(file, `data_offsets must be two non-negative integers, got ${JSON.stringify(offsets)}`, name);
  }
  const [begin, end] = offsets as [number, number];
  if (end < begin) fail(file, `data_offsets [${begin}, ${end}] end before they begin (InvalidOffset)`, name);
  return { name, dtype: dtype as string, shape: shape as number[], begin, end };
}

/** Returns the first key that appears twice in one JSON object, scanning the text (JSON.parse keeps the last). */
export function findDuplicateKey(text: string): string | undefined {
  const stack: (Set<string> | null)[] = []; // null = array
  let expectKey = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (c === '"') {
      let j = i + 1;
      while (j < text.length && text[j] !== '"') j += text[j] === "\\" ? 2 : 1;
      const top = stack[stack.length - 1];
      if (expectKey && top) {
        let key: string;
        try {
          key = JSON.parse(text.slice(i, j + 1)) as string;
        } catch {
          return undefined; // JSON.parse reports the syntax error
        }
        if (top.has(key)) return key;
        top.add(key);
        expectKey = false;
      }
      i = j;
    } else if (c === "{") {
      stack.push(new Set());
      expectKey = true;
    } else if (c === "[") {
      stack.push(null);
    } else if (c === "}" || c === "]") {
      stack.pop();
    } else if (c === ",") {
      expectKey = stack[stack.length - 1] != null;
    }
  }
  return undefined;
}

/** Reads and validates the header of a safetensors file without reading any tensor data. */
export async function readHeader(file: string): Promise<SafetensorsHeader> {
  refusePickle(file);
  const fh = await open(file, "r").catch((e: NodeJS.ErrnoException) => fail(file, `cannot open: ${e.code ?? e.message}`));
  try {
    const size = (await fh.stat()).size;
    const first8 = new Uint8Array(8);
    await fh.read(first8, 0, Math.min(8, size), 0);
    const n = headerLength(first8, size, file);
    const headerBytes = new Uint8Array(n);
    await fh.read(headerBytes, 0, n, 8);
    return parseHeader(headerBytes, size, file);
  } finally {
    await fh.close();
  }
}

/** Converts raw little-endian bytes of one tensor into a tf.Tensor (floats become float32). */
export function bytesToTensor(bytes: Uint8Array, info: TensorInfo, file: string): tf.Tensor {
  const n = info.shape.reduce((a, d) => a * d, 1);
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  switch (info.dtype) {
    case "F32": {
      const out = new Float32Array(n);
      for (let i = 0; i < n; i++) out[i] = dv.getFloat32(i * 4, true);
      return tf.tensor(out, info.shape, "float32");
    }
    case "F16": {
      const out = new Float32Array(n);
      for (let i = 0; i < n; i++) out[i] = halfToFloat(dv.getUint16(i * 2, true));
      return tf.tensor(out, info.shape, "float32");
    }
    case "BF16": {
      const u32 = new Uint32Array(n);
      for (let i = 0; i < n; i++) u32[i] = dv.getUint16(i * 2, true) << 16;
      return tf.tensor(new Float32Array(u32.buffer), info.shape, "float32");
    }
    case "F64": {
      const out = new Float32Array(n);
      for (let i = 0; i < n; i++) out[i] = dv.getFloat64(i * 8, true);
      return tf.tensor(out, info.shape, "float32");
    }
    case "I32": {
      const out = new Int32Array(n);
      for (let i = 0; i < n; i++) out[i] = dv.getInt32(i * 4, true);
      return tf.tensor(out, info.shape, "int32");
    }
    case "I64": {
      const out = new Int32Array(n);
      for (let i = 0; i < n; i++) {
        const v = dv.getBigInt64(i * 8, true);
        if (v > 2147483647n || v < -2147483648n) fail(file, `I64 value ${v} at element ${i} does not fit int32`, info.name);
        out[i] = Number(v);
      }
      return tf.tensor(out, info.shape, "int32");
    }
    case "I16": case "U16": case "I8": case "U8": {
      const out = new Int32Array(n);
      const get = { I16: (i: number) => dv.getInt16(i * 2, true), U16: (i: number) => dv.getUint16(i * 2, true), I8: (i: number) => dv.getInt8(i), U8: (i: number) => dv.getUint8(i) }[info.dtype];
      for (let i = 0; i < n; i++) out[i] = get(i);
      return tf.tensor(out, info.shape, "int32");
    }
    case "BOOL": {
      const out = new Uint8Array(n);
      for (let i = 0; i < n; i++) out[i] = bytes[i]! ? 1 : 0;
      return tf.tensor(out, info.shape, "bool");
    }
    default:
      return fail(file, `dtype ${info.dtype} cannot be loaded as a tensor (supported: F32, F16, BF16, F64, I64, I32, I16, U16, I8, U8, BOOL)`, info.name);
  }
}

/** IEEE 754 half -> float. */
export function halfToFloat(h: number): number {
  const s = h & 0x8000 ? -1 : 1;
  const e = (h >> 10) & 0x1f;
  const f = h & 0x3ff;
  if (e === 0) return s * f * 2 ** -24;
  if (e === 31) return f ? NaN : s * Infinity;
  return s * (1 + f / 1024) * 2 ** (e - 15);
}

/** Reads the named tensors (all when `names` is omitted) of one file, each by offset. */
export async function readTensors(header: SafetensorsHeader, names?: Iterable<string>): Promise<Map<string, tf.Tensor>> {
  await ensureBackend();
  const wanted = names ? [...names] : [...header.tensors.keys()];
  const out = new Map<string, tf.Tensor>();
  const fh = await open(header.file, "r");
  try {
    for (const name of wanted) {
      const info = header.tensors.get(name);
      if (!info) fail(header.file, "not in this file", name);
      const bytes = new Uint8Array(info!.end - info!.begin);
      const { bytesRead } = await fh.read(bytes, 0, bytes.length, header.dataStart + info!.begin);
      if (bytesRead !== bytes.length) fail(header.file, `file was truncated while reading (${bytesRead} of ${bytes.length} bytes)`, name);
      out.set(name, bytesToTensor(bytes, info!, header.file));
    }
  } catch (e) {
    for (const t of out.values()) t.dispose();
    throw e;
  } finally {
    await fh.close();
  }
  return out;
}

/** Reads every tensor of a safetensors file (floats as float32). */
export async function readSafetensors(path: string, names?: Iterable<string>): Promise<Map<string, tf.Tensor>> {
  return readTensors(await readHeader(path), names);
}

/** Validates a whole file held in memory and decodes it (fuzz tests, small files). */
export function decodeSafetensors(bytes: Uint8Array, file = "<memory>"): { header: SafetensorsHeader; tensors: Map<string, tf.Tensor> } {
  const n = headerLength(bytes.subarray(0, 8), bytes.length, file);
  const header = parseHeader(bytes.subarray(8, 8 + n), bytes.length, file);
  const tensors = new Map<string, tf.Tensor>();
  for (const [name, info] of header.tensors) {
    tensors.set(name, bytesToTensor(bytes.subarray(header.dataStart + info.begin, header.dataStart + info.end), info, file));
  }
  return { header, tensors };
}

const TF_TO_ST: Record<string, string> = { float32: "F32", int32: "I32", bool: "BOOL" };

/** Serialises tensors to safetensors bytes: header padded with spaces to 8 bytes, data packed in order. */
export async function encodeSafetensors(tensors: Record<string, tf.Tensor>, metadata: Record<string, string> = {}): Promise<Uint8Array> {
  const entries = Object.entries(tensors).map(([name, t]) => {
    const dtype = TF_TO_ST[t.dtype];
    if (!dtype) throw new WeightsError(`tensor "${name}": dtype ${t.dtype} cannot be written to safetensors`, undefined, name);
    return { name, t, dtype };
  });
  // Like the reference writer: larger dtypes first, then by name.
  entries.sort((a, b) => DTYPE_BITS[b.dtype]! - DTYPE_BITS[a.dtype]! || (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  const header: Record<string, unknown> = { __metadata__: { format: "pt", ...metadata } };
  const datas: Uint8Array[] = [];
  let offset = 0;
  for (const { name, t, dtype } of entries) {
    const values = await t.data();
    const bytes = dtype === "BOOL" ? Uint8Array.from(values as Uint8Array, (v) => (v ? 1 : 0)) : new Uint8Array(values.buffer, values.byteOffset, values.byteLength);
    header[name] = { dtype, shape: t.shape, data_offsets: [offset, offset + bytes.length] };
    datas.push(bytes);
    offset += bytes.length;
  }
  let json = JSON.stringify(header);
  const jsonBytes = new TextEncoder().encode(json);
  const padded = Math.ceil(jsonBytes.length / 8) * 8;
  json += " ".repeat(padded - jsonBytes.length);
  const out = new Uint8Array(8 + padded + offset);
  new DataView(out.buffer).setBigUint64(0, BigInt(padded), true);
  out.set(new TextEncoder().encode(json), 8);
  let at = 8 + padded;
  for (const d of datas) {
    out.set(d, at);
    at += d.length;
  }
  return out;
}

/** Writes a safetensors file atomically: temporary file, fsync, rename. */
export async function writeSafetensors(path: string, tensors: Record<string, tf.Tensor>, metadata?: Record<string, string>): Promise<void> {
  await writeFileAtomic(path, await encodeSafetensors(tensors, metadata));
}

/** PyTorch pickles can run arbitrary code when loaded: refuse them and say how to convert. */
export function refusePickle(file: string): void {
  if (/\.(bin|pt|pth|ckpt|pkl)$/i.test(file)) {
    throw new WeightsError(
      `${file}: PyTorch pickle checkpoints are refused (loading a pickle can execute arbitrary code). ` +
        `Convert it to safetensors once, in Python: ` +
        `\`python -c "import torch; from safetensors.torch import save_file; ` +
        `sd = torch.load('${file}', map_location='cpu', weights_only=True); ` +
        `save_file({k: v.contiguous() for k, v in sd.items()}, '${file.replace(/\.[^.]+$/, ".safetensors")}', metadata={'format': 'pt'})"\`` +
        ` (or \`model.save_pretrained(dir, safe_serialization=True)\` with transformers).`,
      file,
    );
  }
}
