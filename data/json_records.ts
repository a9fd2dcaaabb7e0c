// Streams the records of a LLaVA data file one at a time: JSON Lines (one value per line) or a JSON array whose
// top-level elements are cut out by a byte scanner and parsed one by one. The array route never holds the file as
// one string: V8 caps strings at 2^29 - 24 characters (~512 MiB), below the 1 GB llava_v1_5_mix665k.json, and a
// whole-file JSON.parse would also keep ~3x the file in objects. Memory is one read chunk plus one record.
import { createReadStream } from "node:fs";
import { open } from "node:fs/promises";
import path from "node:path";
import { DataError } from "../core/errors.js";

export type JsonRecordFormat = "json-array" | "jsonl";

/** One record of the file: its parsed value, or why it does not parse (the scan goes on with the next record). */
export interface JsonRecord {
  /** 0-based record number (blank JSONL lines are not counted). */
  index: number;
  /** 1-based line where the record starts. */
  line: number;
  value?: unknown;
  /** Set when the record's text is not valid JSON / UTF-8. */
  error?: string;
  /** Bytes of the file scanned so far (for progress). */
  bytesRead: number;
}

const LF = 0x0a;
const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const COMMA = 0x2c;
const ARRAY_OPEN = 0x5b;
const ARRAY_CLOSE = 0x5d;
const isWs = (c: number) => c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09;
const isOpen = (c: number) => c === 0x7b || c === ARRAY_OPEN; // { [
const isClose = (c: number) => c === 0x7d || c === ARRAY_CLOSE; // } ]
const isBomByte = (c: number) => c === 0xef || c === 0xbb || c === 0xbf;

/** "jsonl" for *.jsonl / *.ndjson; otherwise "json-array" when the first non-blank byte is `[`, else "jsonl". */
export async function detectJsonFormat(file: string): Promise<JsonRecordFormat> {
  const ext = path.extname(file).toLowerCase();
  if (ext === ".jsonl" || ext === ".ndjson") return "jsonl";
  const fh = await openOrThrow(file);
  try {
    const buf = new Uint8Array(4096);
    let pos = 0;
    for (;;) {
      const { bytesRead } = await fh.read(buf, 0, buf.length, pos);
      if (bytesRead === 0) return "jsonl";
      for (let i = 0; i < bytesRead; i++) {
        const c = buf[i]!;
        if (isWs(c) || (pos === 0 && i < 3 && isBomByte(c))) continue; // BOM
        return c === ARRAY_OPEN ? "json-array" : "jsonl";
      }
      pos += bytesRead;
    }
  } finally {
    await fh.close();
  }
}

export interface ReadJsonOptions {
  /** Default: detectJsonFormat. */
  format?: JsonRecordFormat;
  /** Read size (default 1 MiB; tests use tiny chunks to cross every boundary). */
  chunkBytes?: number;
}

/** Records of a JSON array or JSON Lines file, in file order. A broken array structure throws DataError. */
export async function* readJsonRecords(file: string, opts: ReadJsonOptions = {}): AsyncGenerator<JsonRecord> {
  const fmt = opts.format ?? (await detectJsonFormat(file));
  const chunkBytes = opts.chunkBytes ?? 1 << 20;
  yield* fmt === "jsonl" ? readLines(file, chunkBytes) : readArray(file, chunkBytes);
}

const decoder = new TextDecoder("utf-8", { fatal: true, ignoreBOM: false });

function parseRecord(parts: Uint8Array[], index: number, line: number, bytesRead: number): JsonRecord {
  const bytes = parts.length === 1 ? parts[0]! : concat(parts);
  let text: string;
  try {
    text = decoder.decode(bytes);
  } catch {
    return { index, line, error: "invalid UTF-8", bytesRead };
  }
  try {
    return { index, line, value: JSON.parse(text) as unknown, bytesRead };
  } catch (e) {
    return { index, line, error: `invalid JSON: ${(e as Error).message}`, bytesRead };
  }
}

async function* readLines(file: string, chunkBytes: number): AsyncGenerator<JsonRecord> {
  let parts: Uint8Array[] = [];
  let line = 1;
  let index = 0;
  let bytesRead = 0;
  const finish = function* (): Generator<JsonRecord> {
    const n = parts.reduce((a, p) => a + p.length, 0);
    const blank = parts.every((p) => p.every((c) => isWs(c) || isBomByte(c)));
    if (n > 0 && !blank) yield parseRecord(parts, index++, line, bytesRead);
    parts = [];
  };
  for await (const chunk of chunks(file, chunkBytes)) {
    bytesRead += chunk.length;
    let start = 0;
    for (let i = chunk.indexOf(LF); i !== -1; i = chunk.indexOf(LF, start)) {
      parts.push(chunk.subarray(start, i));
      yield* finish();
      line++;
      start = i + 1;
    }
    if (start < chunk.length) parts.push(chunk.subarray(start));
  }
  yield* finish();
}

/**
 * Top-level elements of a JSON array. The scanner tracks only strings (with escapes) and bracket depth: structural
 * bytes are ASCII, so scanning UTF-8 bytes is exact. Each element's bytes go to JSON.parse, which does the rest.
 */
async function* readArray(file: string, chunkBytes: number): AsyncGenerator<JsonRecord> {
  type Expect = "open" | "value-or-end" | "value" | "comma-or-end" | "eof";
  let expect: Expect = "open";
  let depth = 0; // brackets open inside the current element
  let inString = false;
  let escaped = false;
  let collecting = false;
  let scalar = false; // current element is a bare number / literal / string
  let parts: Uint8Array[] = [];
  let line = 1;
  let startLine = 0;
  let index = 0;
  let bytesRead = 0;
  const broken = (what: string): never => {
    throw new DataError(`not a JSON array of records: ${what} (line ${line})`, { file, row: index });
  };
  for await (const chunk of chunks(file, chunkBytes)) {
    bytesRead += chunk.length;
    let segStart = collecting ? 0 : -1;
    for (let i = 0; i < chunk.length; i++) {
      const c = chunk[i]!;
      if (c === LF) line++;
      if (inString) {
        if (escaped) escaped = false;
        else if (c === BACKSLASH) escaped = true;
        else if (c === QUOTE) {
          inString = false;
          if (scalar && depth === 0) {
            parts.push(chunk.subarray(segStart, i + 1));
            collecting = false;
            yield parseRecord(parts, index++, startLine, bytesRead);
            parts = [];
            expect = "comma-or-end";
          }
        }
        continue;
      }
      if (collecting) {
        if (scalar && (isWs(c) || c === COMMA || c === ARRAY_CLOSE)) {
          parts.push(chunk.subarray(segStart, i));
          collecting = false;
          yield parseRecord(parts, index++, startLine, bytesRead);
          parts = [];
          expect = "comma-or-end";
          // fall through: the byte that ended the scalar is structural
        } else {
          if (c === QUOTE) inString = true;
          else if (isOpen(c)) depth++;
          else if (isClose(c)) {
            depth--;
            if (depth === 0) {
              parts.push(chunk.subarray(segStart, i + 1));
              collecting = false;
              yield parseRecord(parts, index++, startLine, bytesRead);
              parts = [];
              expect = "comma-or-end";
            }
          }
          continue;
        }
      }
      if (isWs(c) || (expect === "open" && isBomByte(c))) continue;
      switch (expect) {
        case "open":
          if (c !== ARRAY_OPEN) broken(`expected "[" first, found "${String.fromCharCode(c)}"`);
          expect = "value-or-end";
          break;
        case "comma-or-end":
          if (c === COMMA) expect = "value";
          else if (c === ARRAY_CLOSE) expect = "eof";
          else broken(`expected "," or "]" after record ${index - 1}, found "${String.fromCharCode(c)}"`);
          break;
        case "value-or-end":
        case "value":
          if (c === ARRAY_CLOSE) {
            if (expect === "value") broken(`trailing "," before "]"`);
            expect = "eof";
            break;
          }
          if (c === COMMA) broken(`"," where a record was expected`);
          collecting = true;
          segStart = i;
          startLine = line;
          scalar = !isOpen(c);
          depth = scalar ? 0 : 1;
          if (c === QUOTE) inString = true;
          break;
        case "eof":
          broken(`data after the closing "]"`);
      }
    }
    if (collecting) parts.push(chunk.subarray(segStart));
  }
  if (collecting && scalar && !inString) {
    yield parseRecord(parts, index++, startLine, bytesRead);
    expect = "comma-or-end";
  }
  if (expect === "open") broken("the file is empty");
  if (expect !== "eof") broken(`truncated: the array is not closed${collecting ? ` (record ${index} starting at line ${startLine} is cut off)` : ""}`);
}

async function* chunks(file: string, chunkBytes: number): AsyncGenerator<Uint8Array> {
  const stream = createReadStream(file, { highWaterMark: chunkBytes });
  try {
    for await (const chunk of stream) yield chunk as Uint8Array;
  } catch (e) {
    throw new DataError(`cannot read: ${(e as Error).message}`, { file });
  } finally {
    stream.destroy();
  }
}

async function openOrThrow(file: string) {
  try {
    return await open(file, "r");
  } catch (e) {
    throw new DataError(`cannot read: ${(e as Error).message}`, { file });
  }
}

function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((a, p) => a + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}
