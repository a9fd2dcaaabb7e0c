// TensorBoard event files: hand-written protobuf (Event, Summary.Value.simple_value) in TFRecord framing.
// Framing per record: <u64 len> <u32 masked_crc32c(len bytes)> <data> <u32 masked_crc32c(data)>, little-endian.
// File name as tensorboard's EventFileWriter: events.out.tfevents.<%010d secs>.<hostname>.<pid>.<n>; the pid and a
// per-process counter keep two writers started in the same second apart.
import { closeSync, fsyncSync, mkdirSync, openSync, writeSync } from "node:fs";
import { hostname } from "node:os";
import path from "node:path";
import { maskedCrc32c } from "./crc32c.js";

// ---- protobuf wire format (only what Event needs) ----

/** Base-128 varint of a non-negative integer or an int64 (negative values take 10 bytes, two's complement). */
export function varint(value: number | bigint): number[] {
  let v = BigInt.asUintN(64, BigInt(value));
  const out: number[] = [];
  while (v >= 0x80n) {
    out.push(Number(v & 0x7fn) | 0x80);
    v >>= 7n;
  }
  out.push(Number(v));
  return out;
}

function tag(field: number, wireType: 0 | 1 | 2 | 5): number[] {
  return varint((field << 3) | wireType);
}

function fixed64Double(field: number, x: number): number[] {
  const b = new Uint8Array(8);
  new DataView(b.buffer).setFloat64(0, x, true);
  return [...tag(field, 1), ...b];
}

function fixed32Float(field: number, x: number): number[] {
  const b = new Uint8Array(4);
  new DataView(b.buffer).setFloat32(0, x, true);
  return [...tag(field, 5), ...b];
}

function lengthDelimited(field: number, bytes: ArrayLike<number>): number[] {
  return [...tag(field, 2), ...varint(bytes.length), ...Array.from(bytes)];
}

const utf8 = new TextEncoder();

/** Event{wall_time=1, file_version=3}. */
export function encodeFileVersionEvent(wallTime: number, fileVersion = "brain.Event:2"): Uint8Array {
  return Uint8Array.from([...fixed64Double(1, wallTime), ...lengthDelimited(3, utf8.encode(fileVersion))]);
}

/**
 * Event{wall_time=1, step=2, summary=5{value=1{tag=1, simple_value=2}}}: one Summary.Value per scalar.
 * step 0 is left out, as protobuf does for a proto3 default; simple_value sits in a oneof and is always written.
 */
export function encodeScalarEvent(wallTime: number, step: number, scalars: Record<string, number>): Uint8Array {
  const values: number[] = [];
  for (const [name, x] of Object.entries(scalars)) {
    values.push(...lengthDelimited(1, [...lengthDelimited(1, utf8.encode(name)), ...fixed32Float(2, x)]));
  }
  const stepField = step !== 0 ? [...tag(2, 0), ...varint(step)] : [];
  return Uint8Array.from([...fixed64Double(1, wallTime), ...stepField, ...lengthDelimited(5, values)]);
}

/** One TFRecord: length, masked CRC of the length, data, masked CRC of the data. */
export function frameRecord(data: Uint8Array): Uint8Array {
  const out = new Uint8Array(8 + 4 + data.length + 4);
  const dv = new DataView(out.buffer);
  dv.setBigUint64(0, BigInt(data.length), true);
  dv.setUint32(8, maskedCrc32c(out.subarray(0, 8)), true);
  out.set(data, 12);
  dv.setUint32(12 + data.length, maskedCrc32c(data), true);
  return out;
}

// ---- the file writer ----

let fileCounter = 0;

/** `events.out.tfevents.<10-digit secs>.<hostname>.<pid>.<n>` (tensorboard's EventFileWriter naming). */
export function eventFileName(wallTimeSecs: number): string {
  const secs = String(Math.floor(wallTimeSecs)).padStart(10, "0");
  return `events.out.tfevents.${secs}.${hostname()}.${process.pid}.${fileCounter++}`;
}

export interface EventFileWriterOptions {
  /** Seconds since the epoch; defaults to the clock. Tests pass a fixed clock. */
  now?: () => number;
}

/**
 * Appends scalar summaries to a new event file in `logDir` (created if missing). Each call writes its records with
 * one synchronous write, so a crash loses at most the call in progress; `close()` fsyncs and closes.
 */
export class EventFileWriter {
  readonly path: string;
  private fd: number | undefined;
  private readonly now: () => number;

  constructor(logDir: string, opts: EventFileWriterOptions = {}) {
    this.now = opts.now ?? (() => Date.now() / 1000);
    mkdirSync(logDir, { recursive: true });
    const t = this.now();
    this.path = path.join(logDir, eventFileName(t));
    this.fd = openSync(this.path, "wx");
    this.write([encodeFileVersionEvent(t)]);
  }

  /**
   * Writes one Event per scalar at `step` (what tensorboard's add_scalar does), so each tag is its own record.
   * Values are stored as float32 (simple_value).
   */
  addScalars(step: number, scalars: Record<string, number>, wallTime = this.now()): void {
    if (!Number.isSafeInteger(step)) throw new Error(`${this.path}: step must be an integer, got ${step}`);
    this.write(Object.entries(scalars).map(([name, x]) => encodeScalarEvent(wallTime, step, { [name]: x })));
  }

  /** Frames and writes events in one write call. */
  write(events: Uint8Array[]): void {
    if (this.fd === undefined) throw new Error(`${this.path}: write after close()`);
    const records = events.map(frameRecord);
    const buf = Buffer.concat(records);
    let off = 0;
    while (off < buf.length) off += writeSync(this.fd, buf, off, buf.length - off);
  }

  /** Flushes to disk (fsync) and closes; later calls do nothing. */
  close(): void {
    if (this.fd === undefined) return;
    fsyncSync(this.fd);
    closeSync(this.fd);
    this.fd = undefined;
  }
}
