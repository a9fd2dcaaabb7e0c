// safetensors reader/writer: known vectors from the format's reference crate, dtype conversions, round trips,
// strict validation, a mutation fuzz test, and refusal of pickles.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { tf, setBackend } from "../../core/backend.js";
import { WeightsError } from "../../core/errors.js";
import { decodeSafetensors, encodeSafetensors, readHeader, readSafetensors, refusePickle, writeSafetensors } from "../../models/safetensors.js";
import { openTensorSource } from "../../models/weights.js";
import { goldenDir } from "../helpers.js";

await setBackend("cpu", { quiet: true });

function fileFrom(header: object | string, data: Uint8Array, pad = true): Uint8Array {
  let json = typeof header === "string" ? header : JSON.stringify(header);
  if (pad) json += " ".repeat((8 - (json.length % 8)) % 8);
  const jb = new TextEncoder().encode(json);
  const out = new Uint8Array(8 + jb.length + data.length);
  new DataView(out.buffer).setBigUint64(0, BigInt(jb.length), true);
  out.set(jb, 8);
  out.set(data, 8 + jb.length);
  return out;
}

test("reads the reference crate's doc test vector", () => {
  const bytes = fileFrom('{"test":{"dtype":"I32","shape":[2,2],"data_offsets":[0,16]}}', new Uint8Array(16), false);
  const { tensors } = decodeSafetensors(bytes);
  const t = tensors.get("test")!;
  assert.deepEqual(t.shape, [2, 2]);
  assert.equal(t.dtype, "int32");
  assert.deepEqual([...t.dataSync()], [0, 0, 0, 0]);
  t.dispose();
});

test("F16, BF16, F64, I64 and BOOL convert to the known values", () => {
  const f16 = new Uint8Array(new Uint16Array([0x3c00, 0xc000, 0x7bff, 0x0001, 0x7c00]).buffer);
  const bf16 = new Uint8Array(new Uint16Array([0x3f80, 0x4049, 0xbf00]).buffer);
  const f64 = new Uint8Array(new Float64Array([0.5, -3]).buffer);
  const i64 = new Uint8Array(new BigInt64Array([7n, -2n]).buffer);
  const bool = new Uint8Array([1, 0, 1]);
  const data = new Uint8Array([...f16, ...bf16, ...f64, ...i64, ...bool]);
  let o = 0;
  const at = (n: number) => [o, (o += n)];
  const header = {
    a: { dtype: "F16", shape: [5], data_offsets: at(10) },
    b: { dtype: "BF16", shape: [3], data_offsets: at(6) },
    c: { dtype: "F64", shape: [2], data_offsets: at(16) },
    d: { dtype: "I64", shape: [2], data_offsets: at(16) },
    e: { dtype: "BOOL", shape: [3], data_offsets: at(3) },
  };
  const { tensors } = decodeSafetensors(fileFrom(header, data));
  assert.deepEqual([...tensors.get("a")!.dataSync()], [1, -2, 65504, 2 ** -24, Infinity]);
  assert.deepEqual([...tensors.get("b")!.dataSync()], [1, 3.140625, -0.5]);
  assert.deepEqual([...tensors.get("c")!.dataSync()], [0.5, -3]);
  assert.deepEqual([...tensors.get("d")!.dataSync()], [7, -2]);
  assert.equal(tensors.get("e")!.dtype, "bool");
  assert.deepEqual([...tensors.get("e")!.dataSync()], [1, 0, 1]);
  for (const t of tensors.values()) t.dispose();
});

test("reads the golden tiny LLaMA by offset with the shapes its README states", async () => {
  const file = path.join(goldenDir(), "models/llama_tiny/model.safetensors");
  const h = await readHeader(file);
  assert.equal(h.metadata.format, "pt");
  assert.deepEqual(h.tensors.get("model.layers.0.self_attn.k_proj.weight")?.shape, [32, 64]);
  assert.deepEqual(h.tensors.get("lm_head.weight")?.shape, [97, 64]);
  const m = await readSafetensors(file, ["model.norm.weight"]);
  assert.equal(m.size, 1);
  assert.deepEqual(m.get("model.norm.weight")!.shape, [64]);
  m.get("model.norm.weight")!.dispose();
});

test("write -> read round trip keeps names, shapes, dtypes, values and metadata; header is 8-aligned", async () => {
  const dir = await mkdtemp(path.join(tmpdir(), "vzt-st-"));
  try {
    const tensors = {
      "b.weight": tf.tensor2d([[1.5, -2.25, 3], [0, 1e-30, -7e20]]),
      "a.ids": tf.tensor1d([1, -5, 2147483647], "int32"),
      "c.mask": tf.tensor1d([1, 0, 0, 1], "bool"),
      "empty": tf.zeros([0, 3]),
      "scalar": tf.scalar(42),
    };
    const file = path.join(dir, "x.safetensors");
    await writeSafetensors(file, tensors, { note: "hi" });
    const bytes = await readFile(file);
    const n = Number(new DataView(bytes.buffer, bytes.byteOffset).getBigUint64(0, true));
    assert.equal(n % 8, 0);
    const h = await readHeader(file);
    assert.deepEqual(h.metadata, { format: "pt", note: "hi" });
    const back = await readSafetensors(file);
    for (const [k, t] of Object.entries(tensors)) {
      const b = back.get(k)!;
      assert.deepEqual(b.shape, t.shape, k);
      assert.equal(b.dtype, t.dtype, k);
      assert.deepEqual([...b.dataSync()], [...t.dataSync()], k);
      b.dispose();
      t.dispose();
    }
    // Same tensors -> same bytes (deterministic order and padding).
    const again = await encodeSafetensors(Object.fromEntries([...back.keys()].map((k) => [k, tf.zeros([1])])));
    assert.ok(again.length > 0);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test("strict validation: each malformation gives a WeightsError naming the problem", () => {
  const good = { t: { dtype: "F32", shape: [2], data_offsets: [0, 8] } };
  const cases: [string, Uint8Array, RegExp][] = [
    ["too small", new Uint8Array(5), /HeaderTooSmall/],
    ["header too large", (() => { const b = new Uint8Array(16); new DataView(b.buffer).setBigUint64(0, 200_000_000n, true); return b; })(), /HeaderTooLarge/],
    ["header past end", (() => { const b = fileFrom(good, new Uint8Array(8)); new DataView(b.buffer).setBigUint64(0, 9999n, true); return b; })(), /InvalidHeaderLength/],
    ["not utf8", fileFrom("{\"\xff\"}", new Uint8Array(0)).map((v, i, a) => (i === 10 && a[i] === 0xc3 ? 0xff : v)), /UTF-8|JSON|start/],
    ["not json", fileFrom("{not json}", new Uint8Array(0)), /not valid JSON/],
    ["not starting with {", fileFrom("[1,2]", new Uint8Array(0)), /must start with/],
    ["unknown dtype", fileFrom({ t: { dtype: "F33", shape: [2], data_offsets: [0, 8] } }, new Uint8Array(8)), /tensor "t".*unknown dtype/],
    ["size mismatch", fileFrom({ t: { dtype: "F32", shape: [3], data_offsets: [0, 8] } }, new Uint8Array(8)), /tensor "t".*needs 12 bytes.*TensorInvalidInfo/],
    ["gap", fileFrom({ t: { dtype: "F32", shape: [2], data_offsets: [4, 12] } }, new Uint8Array(12)), /tensor "t".*gap/],
    ["overlap", fileFrom({ t: { dtype: "F32", shape: [2], data_offsets: [0, 8] }, u: { dtype: "F32", shape: [1], data_offsets: [4, 8] } }, new Uint8Array(8)), /overlap|TensorInvalidInfo/],
    ["trailing bytes", fileFrom(good, new Uint8Array(12)), /MetadataIncompleteBuffer/],
    ["end before begin", fileFrom({ t: { dtype: "F32", shape: [0], data_offsets: [8, 0] } }, new Uint8Array(8)), /end before/],
    ["negative shape", fileFrom({ t: { dtype: "F32", shape: [-2], data_offsets: [0, 8] } }, new Uint8Array(8)), /shape must be/],
    ["metadata not string", fileFrom({ __metadata__: { a: 1 }, ...good }, new Uint8Array(8)), /__metadata__.a must be a string/],
    ["duplicate key", fileFrom('{"t":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"t":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}', new Uint8Array(8)), /twice/],
    ["overflowing shape", fileFrom({ t: { dtype: "F64", shape: [2 ** 40, 2 ** 40], data_offsets: [0, 8] } }, new Uint8Array(8)), /TensorInvalidInfo/],
  ];
  for (const [what, bytes, re] of cases) {
    assert.throws(() => decodeSafetensors(bytes, "case.safetensors"), (e: unknown) => {
      assert.ok(e instanceof WeightsError, `${what}: ${String(e)}`);
      assert.match(e.message, /^case\.safetensors/, what);
      assert.match(e.message, re, what);
      return true;
    });
  }
});

test("fuzz: 1,500 mutated files all give a clean WeightsError or decode within the file's size", async () => {
  const src = await readFile(path.join(goldenDir(), "models/projector_tiny/model.safetensors"));
  const base = new Uint8Array(src.buffer, src.byteOffset, src.byteLength);
  const n = Number(new DataView(base.buffer, base.byteOffset).getBigUint64(0, true));
  let seed = 12345;
  const rand = (k: number) => {
    seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
    return seed % k;
  };
  const headerText = new TextDecoder().decode(base.subarray(8, 8 + n));
  const digits = [...headerText.matchAll(/\d+/g)];
  let errors = 0;
  let decoded = 0;
  for (let i = 0; i < 1500; i++) {
    let m: Uint8Array;
    switch (i % 6) {
      case 0: { // flip random bytes anywhere in the header region
        m = base.slice();
        for (let k = 0; k < 1 + rand(4); k++) m[rand(8 + n)] = rand(256);
        break;
      }
      case 1: // truncate
        m = base.slice(0, rand(base.length));
        break;
      case 2: { // change one number in the header JSON
        const d = digits[rand(digits.length)]!;
        const repl = String([0, 1, 7, 8, 9999999, 2 ** 53, rand(100000)][rand(7)]);
        const text = headerText.slice(0, d.index) + repl + headerText.slice(d.index! + d[0].length);
        m = fileFrom(text.trimEnd(), base.subarray(8 + n));
        break;
      }
      case 3: { // rewrite the length prefix
        m = base.slice();
        new DataView(m.buffer).setBigUint64(0, BigInt(rand(2) ? rand(n * 2) : 2 ** 62), true);
        break;
      }
      case 4: // append junk
        m = new Uint8Array([...base, ...new Uint8Array(1 + rand(16))]);
        break;
      default: { // replace a dtype or key character
        const text = headerText.replace(/"F32"/, ['"F16"', '"BF16"', '"I64"', '"X"', "null", "7"][rand(6)]!);
        m = fileFrom(text.trimEnd(), base.subarray(8 + n));
      }
    }
    try {
      const { tensors } = decodeSafetensors(m, `fuzz${i}`);
      let bytes = 0;
      for (const t of tensors.values()) {
        bytes += t.size * 4;
        t.dispose();
      }
      assert.ok(bytes <= m.length * 4, "decoded tensors are bounded by the file's size");
      decoded++;
    } catch (e) {
      assert.ok(e instanceof WeightsError, `mutation ${i} (kind ${i % 6}) threw ${String(e)}`);
      assert.match(e.message, new RegExp(`^fuzz${i}`));
      errors++;
    }
  }
  assert.ok(errors > 1000, `most mutations must be rejected (rejected ${errors}, decoded ${decoded})`);
});

test("pickles are refused with a conversion hint, by file and by folder", async () => {
  assert.throws(() => refusePickle("/m/pytorch_model.bin"), /refused.*safetensors.*save_file/s);
  const dir = await mkdtemp(path.join(tmpdir(), "vzt-pkl-"));
  try {
    await writeFile(path.join(dir, "pytorch_model.bin"), "PK\x03\x04 not really");
    await assert.rejects(openTensorSource(dir), /pytorch_model\.bin: PyTorch pickle checkpoints are refused/);
    await assert.rejects(readHeader(path.join(dir, "pytorch_model.bin")), /refused/);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test("sharded checkpoints resolve through model.safetensors.index.json; a missing shard is named", async () => {
  const dir = await mkdtemp(path.join(tmpdir(), "vzt-shard-"));
  try {
    await writeSafetensors(path.join(dir, "model-00001-of-00002.safetensors"), { a: tf.ones([2]) });
    await writeSafetensors(path.join(dir, "model-00002-of-00002.safetensors"), { b: tf.zeros([3]) });
    const index = { metadata: {}, weight_map: { a: "model-00001-of-00002.safetensors", b: "model-00002-of-00002.safetensors", c: "model-00003-of-00003.safetensors" } };
    await writeFile(path.join(dir, "model.safetensors.index.json"), JSON.stringify(index));
    const src = await openTensorSource(dir);
    assert.deepEqual(src.names.sort(), ["a", "b", "c"]);
    assert.deepEqual(src.info("b")?.shape, [3]);
    const got = await src.read(["a", "b"]);
    assert.deepEqual([...got.get("a")!.dataSync()], [1, 1]);
    assert.deepEqual([...got.get("b")!.dataSync()], [0, 0, 0]);
    for (const t of got.values()) t.dispose();
    await assert.rejects(src.read(["c"]), /model-00003-of-00003\.safetensors: shard listed .* for tensor "c" is missing/);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
