// TensorBoard event files: the exact record test vectors of formats_and_metrics.md §6, the CRC-32C check value,
// and a written file parsed back by an independent reader (bitwise CRC-32C, minimal protobuf decoder) in this test.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, readdirSync, rmSync } from "node:fs";
import { tmpdir, hostname } from "node:os";
import path from "node:path";
import { crc32c, maskedCrc32c } from "../../train/crc32c.js";
import { encodeFileVersionEvent, encodeScalarEvent, frameRecord, EventFileWriter, varint } from "../../train/tensorboard.js";
import { JsonlLogger, TensorBoardLogger, multiLogger, StdoutLogger } from "../../train/metric_logger.js";

const hex = (b: Uint8Array) => Buffer.from(b).toString("hex");
const ascii = (s: string) => new TextEncoder().encode(s);

test("CRC-32C check value and masked CRCs (formats_and_metrics.md §6)", () => {
  assert.equal(crc32c(ascii("123456789")), 0xe3069283);
  assert.equal(maskedCrc32c(new Uint8Array(0)), 0xa282ead8);
  // RFC 3720 (iSCSI) B.4 vectors: 32 zero bytes and 32 0xFF bytes.
  assert.equal(crc32c(new Uint8Array(32)), 0x8a9136aa);
  assert.equal(crc32c(new Uint8Array(32).fill(0xff)), 0x62a8ab43);
  assert.equal(crc32c(ascii("6789"), crc32c(ascii("12345"))), 0xe3069283, "running CRC continues");
});

test("the two exact record test vectors (formats_and_metrics.md §6)", () => {
  assert.equal(
    hex(frameRecord(encodeFileVersionEvent(1.5))),
    "1800000000000000a37f4b2209000000000000f83f1a0d627261696e2e4576656e743a322a28646c",
  );
  assert.equal(
    hex(frameRecord(encodeScalarEvent(2.0, 7, { loss: 0.25 }))),
    "1a00000000000000129bd82d09000000000000004010072a0d0a0b0a046c6f7373150000803e93324efe",
  );
});

test("varints: small, multi-byte, 2^53 and negative int64", () => {
  assert.deepEqual(varint(0), [0]);
  assert.deepEqual(varint(300), [0xac, 0x02]);
  assert.deepEqual(varint(2 ** 53), [0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x10]);
  assert.deepEqual(varint(-1), [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]);
});

// ---- an independent reader: bitwise CRC-32C (no table), TFRecord framing, just enough protobuf ----

function crcBitwise(bytes: Uint8Array): number {
  let c = 0xffffffff;
  for (const byte of bytes) {
    c ^= byte;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0x82f63b78 : c >>> 1;
  }
  return (c ^ 0xffffffff) >>> 0;
}
const masked = (b: Uint8Array) => (((crcBitwise(b) >>> 15) | (crcBitwise(b) << 17)) + 0xa282ead8) >>> 0;

function readRecords(buf: Uint8Array): Uint8Array[] {
  const dv = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const out: Uint8Array[] = [];
  let off = 0;
  while (off < buf.length) {
    const len = Number(dv.getBigUint64(off, true));
    assert.equal(dv.getUint32(off + 8, true), masked(buf.subarray(off, off + 8)), `length CRC at byte ${off}`);
    const data = buf.subarray(off + 12, off + 12 + len);
    assert.equal(dv.getUint32(off + 12 + len, true), masked(data), `data CRC at byte ${off}`);
    out.push(data);
    off += 16 + len;
  }
  assert.equal(off, buf.length, "no trailing bytes");
  return out;
}

type Field = { field: number; wire: number; value: bigint | Uint8Array };
function fields(b: Uint8Array): Field[] {
  const out: Field[] = [];
  let i = 0;
  const vint = () => {
    let v = 0n, s = 0n;
    for (;;) {
      const x = b[i++]!;
      v |= BigInt(x & 0x7f) << s;
      s += 7n;
      if (!(x & 0x80)) return v;
    }
  };
  while (i < b.length) {
    const key = Number(vint());
    const wire = key & 7, field = key >> 3;
    if (wire === 0) out.push({ field, wire, value: vint() });
    else if (wire === 1) { out.push({ field, wire, value: b.slice(i, i + 8) }); i += 8; }
    else if (wire === 5) { out.push({ field, wire, value: b.slice(i, i + 4) }); i += 4; }
    else if (wire === 2) { const n = Number(vint()); out.push({ field, wire, value: b.slice(i, i + n) }); i += n; }
    else throw new Error(`wire type ${wire}`);
  }
  return out;
}

interface ParsedEvent { wallTime: number; step: number; fileVersion?: string; values: { tag: string; value: number }[] }
function parseEvent(b: Uint8Array): ParsedEvent {
  const ev: ParsedEvent = { wallTime: NaN, step: 0, values: [] };
  for (const f of fields(b)) {
    if (f.field === 1 && f.wire === 1) ev.wallTime = new DataView((f.value as Uint8Array).buffer).getFloat64(0, true);
    else if (f.field === 2 && f.wire === 0) ev.step = Number(f.value);
    else if (f.field === 3 && f.wire === 2) ev.fileVersion = new TextDecoder().decode(f.value as Uint8Array);
    else if (f.field === 5 && f.wire === 2) {
      for (const v of fields(f.value as Uint8Array)) {
        assert.equal(v.field, 1);
        let tag = "", value = NaN;
        for (const x of fields(v.value as Uint8Array)) {
          if (x.field === 1) tag = new TextDecoder().decode(x.value as Uint8Array);
          if (x.field === 2 && x.wire === 5) value = new DataView((x.value as Uint8Array).buffer).getFloat32(0, true);
        }
        ev.values.push({ tag, value });
      }
    } else throw new Error(`unexpected Event field ${f.field}`);
  }
  return ev;
}

test("a written event file parses back: name, framing, both CRCs, file_version, tags, steps, float32 values", () => {
  const dir = mkdtempSync(path.join(tmpdir(), "vzt-tb-"));
  try {
    let t = 1700000000.25;
    const w = new EventFileWriter(dir, { now: () => t });
    t += 1;
    w.addScalars(0, { loss: 2.5, lr: 1e-3 });
    w.addScalars(1, { loss: 0.1 });
    w.addScalars(2 ** 40, { "train/grad_norm": Math.PI, nan: NaN });
    w.close();
    w.close(); // idempotent
    assert.throws(() => w.addScalars(3, { loss: 1 }), /after close/);
    const name = path.basename(w.path);
    assert.match(name, new RegExp(`^events\\.out\\.tfevents\\.1700000000\\.${hostname().replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}\\.${process.pid}\\.\\d+$`));
    const events = readRecords(new Uint8Array(readFileSync(w.path))).map(parseEvent);
    assert.equal(events.length, 1 + 5, "file_version + one event per scalar");
    assert.deepEqual(events[0], { wallTime: 1700000000.25, step: 0, fileVersion: "brain.Event:2", values: [] });
    const scalars = events.slice(1).map((e) => [e.step, e.wallTime, e.values.length, e.values[0]!.tag, e.values[0]!.value]);
    assert.deepEqual(scalars.slice(0, 4), [
      [0, 1700000001.25, 1, "loss", 2.5],
      [0, 1700000001.25, 1, "lr", Math.fround(1e-3)],
      [1, 1700000001.25, 1, "loss", Math.fround(0.1)],
      [2 ** 40, 1700000001.25, 1, "train/grad_norm", Math.fround(Math.PI)],
    ]);
    assert.ok(Number.isNaN(scalars[4]![4]));
    // A second writer in the same second gets its own file.
    const w2 = new EventFileWriter(dir, { now: () => 1700000000 });
    w2.close();
    assert.equal(readdirSync(dir).length, 2);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("JsonlLogger, TensorBoardLogger and StdoutLogger through multiLogger", () => {
  const dir = mkdtempSync(path.join(tmpdir(), "vzt-ml-"));
  try {
    const lines: string[] = [];
    const fakeStream = { isTTY: false, write: (s: string) => (lines.push(s), true) } as unknown as NodeJS.WriteStream;
    const jsonl = new JsonlLogger(dir, { now: () => 12.5 });
    const tb = new TensorBoardLogger(path.join(dir, "tb"), { now: () => 12.5 });
    const out = new StdoutLogger({ totalSteps: 25, every: 10, stream: fakeStream });
    const all = multiLogger(jsonl, tb, out);
    all.logText?.("config: tiny");
    for (let s = 1; s <= 25; s++) all.log(s, { loss: 1 / s, lr: 2e-4, samples_per_s: 3.25, other: s });
    all.log(26, { loss: Infinity });
    all.close();
    // JSONL: one object per line, flushed as written; non-finite -> null.
    const rows = readFileSync(jsonl.path, "utf8").trimEnd().split("\n").map((l) => JSON.parse(l) as Record<string, unknown>);
    assert.equal(rows.length, 27);
    assert.deepEqual(rows[0], { step: null, time: 12.5, text: "config: tiny" });
    assert.deepEqual(rows[3], { step: 3, time: 12.5, loss: 1 / 3, lr: 2e-4, samples_per_s: 3.25, other: 3 });
    assert.deepEqual(rows[26], { step: 26, time: 12.5, loss: null });
    // TensorBoard: 1 + 26*4 + 1 records.
    const ev = readRecords(new Uint8Array(readFileSync(tb.path))).map(parseEvent);
    assert.equal(ev.length, 1 + 25 * 4 + 1);
    assert.deepEqual(ev[5]!.values, [{ tag: "loss", value: Math.fround(1 / 2) }]);
    assert.equal(ev[5]!.step, 2);
    // Plain lines (not a TTY): the text, then steps 10, 20 and the last step 25.
    assert.equal(lines[0], "config: tiny\n");
    const steps = lines.slice(1).map((l) => l.split(" ")[1]);
    assert.deepEqual(steps, ["10/25", "20/25", "25/25"]);
    assert.match(lines[1]!, /^step 10\/25 loss 0\.1000 lr 2\.00e-4 samples\/s 3\.3 ETA \S+\n$/);
    // An evaluation gets a line of its own at any step, not only every `every` steps.
    lines.length = 0;
    const out2 = new StdoutLogger({ totalSteps: 25, every: 10, stream: fakeStream });
    out2.log(7, { loss: 0.5, eval_loss: 0.25, eval_shapes_vqav2_accuracy: 37.5 });
    assert.deepEqual(lines, ["eval at step 7/25: eval_loss 0.2500 eval_shapes_vqav2_accuracy 37.5000\n"]);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("StdoutLogger on a TTY draws a core/log.ts Progress bar with the step and scalars", { skip: Boolean(process.env.CI) }, () => {
  const chunks: string[] = [];
  const tty = { isTTY: true, write: (s: string) => (chunks.push(s), true) } as unknown as NodeJS.WriteStream;
  const out = new StdoutLogger({ totalSteps: 8, startStep: 4, stream: tty });
  for (let s = 5; s <= 8; s++) out.log(s, { loss: 0.5, lr: 1e-4 });
  out.close();
  const last = chunks.at(-1)!;
  assert.match(last, /^\r\x1b\[Ktrain \[#+\] 4\/4 100% .*step 8\/8  loss 0\.5000  lr 1\.00e-4\n$/);
});
