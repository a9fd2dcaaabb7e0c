// Image decoding and CLIP / LLaVA-pad preprocessing against ../shared/golden/preprocess (Pillow + HF restatement),
// the real COCO JPEGs, PIL convert("RGB") rules on PNGs made here, and config parsing of real processor files.
import { test } from "node:test";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import path from "node:path";
import zlib from "node:zlib";
import sharp from "sharp";
import { tf, setBackend } from "../../core/backend.js";
import { ConfigError, DataError } from "../../core/errors.js";
import { decodeImage } from "../../data/image.js";
import {
  CLIP_VIT_L_336_PREPROCESSOR,
  expandToSquare,
  loadPreprocessorConfig,
  normalizeTable,
  parsePreprocessorConfig,
  pilResize,
  preprocessImage,
  preprocessRGB,
  preprocessToFloat32,
  resizeOutputSize,
} from "../../data/preprocess.js";
import { goldenDir, maxAbsDiff } from "../helpers.js";

const G = path.join(goldenDir(), "preprocess");
const REAL = path.join(goldenDir(), "real");

interface Arr {
  shape: number[];
  data: number[];
}
interface ModeExpect {
  square_side?: number;
  paste_xy?: [number, number];
  input_size_wh: [number, number];
  resize_to_wh: [number, number];
  crop_top_left: [number, number];
  after_resize_uint8_hwc?: Arr;
  after_crop_uint8_hwc?: Arr;
  pixel_values: Arr;
}
interface Case {
  file: string;
  file_sha256: string;
  source: { width: number; height: number; mode: string };
  decoded_rgb?: Arr;
  rgb_after_convert?: { sha256_u8: string; shape: number[] };
  rgba_check?: { example_pixel_x0_y0: { rgba: number[]; rgb: number[] } };
  clip?: ModeExpect;
  llava_pad?: ModeExpect;
}
interface Manifest {
  cases: { case: string; image: string; json: string; image_sha256: string }[];
}

const manifest = JSON.parse(readFileSync(path.join(G, "manifest.json"), "utf8")) as Manifest;
const sha256 = (b: Uint8Array): string => createHash("sha256").update(b).digest("hex");
const readCase = (json: string): Case => JSON.parse(zlib.gunzipSync(readFileSync(path.join(G, json))).toString("utf8")) as Case;
const f32 = (a: Arr): Float32Array => Float32Array.from(a.data, Math.fround);

assert.ok(manifest.cases.length >= 4, "manifest lists the golden cases");

for (const entry of manifest.cases) {
  test(`golden ${entry.case} (${entry.image}): decode, geometry, intermediates, pixel_values in both modes`, async () => {
    const bytes = new Uint8Array(readFileSync(path.join(G, entry.image)));
    assert.equal(sha256(bytes), entry.image_sha256, "image file matches the manifest");
    const c = readCase(entry.json);
    const img = await decodeImage(bytes);
    assert.deepEqual([img.width, img.height], [c.source.width, c.source.height]);
    assert.equal(img.data.length, img.width * img.height * 3);
    if (c.decoded_rgb) {
      assert.equal(maxAbsDiff(img.data, c.decoded_rgb.data), 0, "sharp decodes like Pillow / libjpeg-turbo");
    }
    if (c.rgb_after_convert) assert.equal(sha256(img.data), c.rgb_after_convert.sha256_u8, "convert(\"RGB\") result");
    if (c.rgba_check) assert.deepEqual(Array.from(img.data.subarray(0, 3)), c.rgba_check.example_pixel_x0_y0.rgb);
    // The preprocessing alone, from Pillow's own decoded pixels where given (so decoder and resampler are tested apart).
    const input = c.decoded_rgb ? { data: Uint8Array.from(c.decoded_rgb.data), width: img.width, height: img.height } : img;
    for (const [key, mode] of [["clip", "clip"], ["llava_pad", "pad"]] as const) {
      const e = c[key];
      if (!e) continue;
      const square = mode === "pad" ? expandToSquare(input, [122, 116, 104]) : input;
      assert.deepEqual([square.width, square.height], e.input_size_wh, `${key}: input size`);
      if (e.square_side !== undefined && e.paste_xy) {
        const [px, py] = e.paste_xy;
        const at = ((py * square.width + px) * 3) | 0;
        assert.deepEqual(Array.from(square.data.subarray(at, at + 3)), Array.from(input.data.subarray(0, 3)), "paste position");
      }
      const size = resizeOutputSize(square.width, square.height, parsePreprocessorConfig(CLIP_VIT_L_336_PREPROCESSOR));
      assert.deepEqual([size.width, size.height], e.resize_to_wh, `${key}: resize size`);
      if (e.after_resize_uint8_hwc) {
        const r = pilResize(square, size.width, size.height, 3);
        assert.equal(maxAbsDiff(r.data, e.after_resize_uint8_hwc.data), 0, `${key}: uint8 after Pillow resize`);
        if (e.after_crop_uint8_hwc) {
          const [top, left] = e.crop_top_left;
          const crop = new Uint8Array(336 * 336 * 3);
          for (let y = 0; y < 336; y++) {
            const s = ((top + y) * r.width + left) * 3;
            crop.set(r.data.subarray(s, s + 336 * 3), y * 336 * 3);
          }
          assert.equal(maxAbsDiff(crop, e.after_crop_uint8_hwc.data), 0, `${key}: uint8 after center crop`);
        }
      }
      const pv = preprocessRGB(input, { mode });
      assert.deepEqual(pv.shape, [3, 336, 336]);
      const d = maxAbsDiff(pv.data, f32(e.pixel_values));
      assert.equal(sha256(new Uint8Array(pv.data.buffer)), (e.pixel_values as Arr & { sha256_f32le: string }).sha256_f32le, `${key}: bit-exact`);
      assert.ok(d <= 1e-5, `${key}: pixel_values max |diff| ${d} > 1e-5`);
      // The whole path from the encoded bytes.
      const full = await preprocessToFloat32(bytes, { mode });
      const d2 = maxAbsDiff(full.data, f32(e.pixel_values));
      assert.ok(d2 <= 1e-5, `${key} from bytes: pixel_values max |diff| ${d2} > 1e-5`);
    }
  });
}

test("normalize table equals golden normalize_lut.json (rescale in float64, normalize in float32)", () => {
  const g = JSON.parse(readFileSync(path.join(G, "normalize_lut.json"), "utf8")) as { lut: Arr & { sha256_f32le: string } };
  assert.deepEqual(g.lut.shape, [3, 256]);
  const lut = normalizeTable(parsePreprocessorConfig(CLIP_VIT_L_336_PREPROCESSOR));
  assert.equal(maxAbsDiff(lut, f32(g.lut)), 0);
  assert.equal(sha256(new Uint8Array(lut.buffer)), g.lut.sha256_f32le);
});

test("real COCO JPEGs decode to 500x375 and 640x480 RGB, embedded ICC profile ignored like PIL", async () => {
  for (const [name, w, h] of [
    ["COCO_val2014_000000297078.jpg", 500, 375],
    ["COCO_val2014_000000265719.jpg", 640, 480],
  ] as const) {
    const bytes = new Uint8Array(readFileSync(path.join(REAL, "images", name)));
    const img = await decodeImage(bytes);
    assert.deepEqual([img.width, img.height, img.data.length], [w, h, w * h * 3], name);
    const plain = await sharp(bytes, { ignoreIcc: true }).raw().toBuffer();
    assert.equal(maxAbsDiff(img.data, plain), 0, `${name}: stored colours, no ICC transform`);
    const pv = await preprocessToFloat32(bytes, { mode: "pad" });
    assert.deepEqual(pv.shape, [3, 336, 336]);
  }
});

test("truncated, corrupt and unsupported bytes raise a clear DataError", async () => {
  const jpg = new Uint8Array(readFileSync(path.join(G, "case_1.jpg")));
  await assert.rejects(decodeImage(jpg.subarray(0, jpg.length >> 1)), (e: Error) => {
    assert.ok(e instanceof DataError, String(e));
    assert.match(e.message, /cannot decode JPEG image \(57257 bytes\): .+/);
    return true;
  });
  const png = new Uint8Array(readFileSync(path.join(G, "case_2.png")));
  const bad = png.slice();
  bad.fill(7, 40, 200);
  await assert.rejects(decodeImage(bad), (e: Error) => e instanceof DataError && /cannot decode PNG/.test(e.message));
  await assert.rejects(decodeImage(new TextEncoder().encode("GIF89a not an image")), /not JPEG, PNG or WebP.*47 49 46 38/);
  await assert.rejects(decodeImage(new Uint8Array(0)), /not JPEG, PNG or WebP \(0 bytes/);
  await assert.rejects(preprocessToFloat32(jpg.subarray(0, 500)), DataError);
});

/** A raw W x H image made of small known values. */
function pattern(w: number, h: number, channels: number): Buffer {
  const b = Buffer.alloc(w * h * channels);
  for (let i = 0; i < b.length; i++) b[i] = (i * 37 + 11) % 256;
  return b;
}

test("grayscale PNG (made with sharp) -> grey copied to R, G, B", async () => {
  const w = 7, h = 5;
  const grey = pattern(w, h, 1);
  const png = await sharp(grey, { raw: { width: w, height: h, channels: 1 } }).toColourspace("b-w").png().toBuffer();
  assert.equal(png[25], 0, "PNG colour type 0 (grey)");
  const img = await decodeImage(png);
  assert.deepEqual([img.width, img.height], [w, h]);
  for (let i = 0; i < w * h; i++) assert.deepEqual(Array.from(img.data.subarray(i * 3, i * 3 + 3)), [grey[i], grey[i], grey[i]]);
});

test("RGBA PNG (made with sharp) -> alpha dropped, not composited", async () => {
  const w = 6, h = 4;
  const rgba = pattern(w, h, 4);
  for (let i = 0; i < w * h; i += 2) rgba[i * 4 + 3] = 0; // half the pixels fully transparent
  const png = await sharp(rgba, { raw: { width: w, height: h, channels: 4 } }).png().toBuffer();
  assert.equal(png[25], 6, "PNG colour type 6 (RGBA)");
  const img = await decodeImage(png);
  for (let i = 0; i < w * h; i++) assert.deepEqual(Array.from(img.data.subarray(i * 3, i * 3 + 3)), Array.from(rgba.subarray(i * 4, i * 4 + 3)));
  // Grey + alpha (LA) likewise keeps the grey of transparent pixels.
  const la = Buffer.from([77, 0, 200, 255, 13, 0]);
  const img2 = await decodeImage(await sharp(la, { raw: { width: 3, height: 1, channels: 2 } }).png().toBuffer());
  assert.deepEqual(Array.from(img2.data), [77, 77, 77, 200, 200, 200, 13, 13, 13]);
});

/** A minimal PNG (no filtering) so the bit depth and colour type are exactly the ones asked for. */
function makePng(w: number, h: number, bitDepth: number, colourType: number, rows: Buffer[], extra: Buffer[] = []): Buffer {
  const chunk = (type: string, data: Buffer): Buffer => {
    const td = Buffer.concat([Buffer.from(type, "latin1"), data]);
    const len = Buffer.alloc(4);
    len.writeUInt32BE(data.length);
    const crc = Buffer.alloc(4);
    crc.writeUInt32BE(zlib.crc32(td));
    return Buffer.concat([len, td, crc]);
  };
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(w, 0);
  ihdr.writeUInt32BE(h, 4);
  ihdr[8] = bitDepth;
  ihdr[9] = colourType;
  const raw = Buffer.concat(rows.map((r) => Buffer.concat([Buffer.from([0]), r])));
  const sig = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
  return Buffer.concat([sig, chunk("IHDR", ihdr), ...extra.map((e) => chunk(e.subarray(0, 4).toString("latin1"), e.subarray(4))), chunk("IDAT", zlib.deflateSync(raw)), chunk("IEND", Buffer.alloc(0))]);
}
const be16 = (...v: number[]): Buffer => {
  const b = Buffer.alloc(v.length * 2);
  v.forEach((x, i) => b.writeUInt16BE(x, i * 2));
  return b;
};

test("16-bit and palette PNGs follow PIL: RGB16 high byte, grey16 ('I') clamped, palette tRNS ignored", async () => {
  const rgb16 = await decodeImage(makePng(2, 1, 16, 2, [be16(0x01ff, 0x80ff, 0xffff, 0x0080, 0x7f80, 0x1234)]));
  assert.deepEqual(Array.from(rgb16.data), [1, 128, 255, 0, 127, 18]);
  const grey16 = await decodeImage(makePng(3, 1, 16, 0, [be16(0x01ff, 200, 18)]));
  assert.deepEqual(Array.from(grey16.data), [255, 255, 255, 200, 200, 200, 18, 18, 18]);
  const plte = Buffer.concat([Buffer.from("PLTE"), Buffer.from([255, 0, 0, 1, 2, 3, 9, 8, 7])]);
  const trns = Buffer.concat([Buffer.from("tRNS"), Buffer.from([0, 128])]);
  const pal = await decodeImage(makePng(3, 1, 8, 3, [Buffer.from([2, 0, 1])], [plte, trns]));
  assert.deepEqual(Array.from(pal.data), [9, 8, 7, 255, 0, 0, 1, 2, 3]);
});

test("WebP decodes; EXIF orientation is not applied", async () => {
  const w = 9, h = 4;
  const rgb = pattern(w, h, 3);
  const webp = await sharp(rgb, { raw: { width: w, height: h, channels: 3 } }).webp({ lossless: true }).toBuffer();
  const img = await decodeImage(webp);
  assert.deepEqual([img.width, img.height], [w, h]);
  assert.equal(maxAbsDiff(img.data, rgb), 0);
  const jpg = await sharp(rgb, { raw: { width: w, height: h, channels: 3 } }).jpeg().withMetadata({ orientation: 6 }).toBuffer();
  assert.equal((await sharp(jpg).metadata()).orientation, 6);
  const rot = await decodeImage(jpg);
  assert.deepEqual([rot.width, rot.height], [w, h], "stored size, not rotated");
});

test("resampler invariants: a constant image stays constant (down and up), same size is a copy", () => {
  const make = (w: number, h: number, v: [number, number, number]) => {
    const data = new Uint8Array(w * h * 3);
    for (let i = 0; i < w * h; i++) data.set(v, i * 3);
    return { data, width: w, height: h };
  };
  const img = make(50, 31, [3, 128, 250]);
  for (const [w, h] of [[17, 9], [336, 201], [50, 80], [13, 31]] as const) {
    for (const resample of [1, 2, 3, 4, 5]) {
      const r = pilResize(img, w, h, resample);
      assert.equal(r.data.length, w * h * 3);
      for (let i = 0; i < w * h; i++) assert.deepEqual(Array.from(r.data.subarray(i * 3, i * 3 + 3)), [3, 128, 250], `${w}x${h} filter ${resample}`);
    }
  }
  const src = { data: Uint8Array.from(pattern(20, 10, 3)), width: 20, height: 10 };
  assert.deepEqual(pilResize(src, 20, 10).data, src.data);
});

test("HF center crop pads with zeros when the image is smaller than crop_size", () => {
  const cfg = { ...CLIP_VIT_L_336_PREPROCESSOR, size: { height: 100, width: 60 } };
  const data = new Uint8Array(30 * 20 * 3).fill(200);
  const pv = preprocessRGB({ data, width: 30, height: 20 }, { config: cfg });
  const lut = normalizeTable(parsePreprocessorConfig(cfg));
  // Image (100 x 60 after resize) sits at top = ceil(236/2) = 118, left = ceil(276/2) = 138.
  const at = (c: number, y: number, x: number) => pv.data[(c * 336 + y) * 336 + x];
  assert.equal(at(0, 118, 138), lut[200]);
  assert.equal(at(2, 217, 197), lut[512 + 200]);
  assert.equal(at(0, 117, 138), lut[0]);
  assert.equal(at(1, 118, 137), lut[256]);
  assert.equal(at(1, 218, 197), lut[256]);
  assert.equal(at(1, 217, 198), lut[256]);
});

test("configs: flat preprocessor_config.json and nested processor_config.json give the golden values; bad keys listed", async () => {
  const flat = await loadPreprocessorConfig(path.join(REAL, "models", "llava-hf_llava-1.5-7b-hf"));
  const nested = await loadPreprocessorConfig(path.join(REAL, "models", "llava-1.5-7b-hf_lora-adapter_v5-save"));
  const want = parsePreprocessorConfig(CLIP_VIT_L_336_PREPROCESSOR);
  assert.deepEqual(parsePreprocessorConfig(flat), want);
  assert.deepEqual(parsePreprocessorConfig(nested), want);
  assert.deepEqual(want.size, { shortestEdge: 336 });
  assert.deepEqual(want.cropSize, { height: 336, width: 336 });
  const bytes = new Uint8Array(readFileSync(path.join(G, "case_2.png")));
  const e = readCase("case_2.json.gz");
  for (const config of [flat, nested, { image_processor: flat }]) {
    const pv = await preprocessToFloat32(bytes, { mode: "pad", config });
    assert.equal(maxAbsDiff(pv.data, f32(e.llava_pad!.pixel_values)), 0);
  }
  assert.throws(
    () => parsePreprocessorConfig({ size: { longest_edge: 3 }, resample: 0, image_std: [1, 0, 1], do_resize: "yes" }, "x.json"),
    (err: Error) => err instanceof ConfigError && err.problems.length === 4 && /x\.json/.test(err.message),
  );
  await assert.rejects(loadPreprocessorConfig(G), ConfigError);
});

test("preprocessImage returns [3, 336, 336] float32 tensors equal to golden on wasm and cpu, no leak", async () => {
  const bytes = new Uint8Array(readFileSync(path.join(G, "case_5.png")));
  const e = readCase("case_5.json.gz");
  for (const backend of ["wasm", "cpu"] as const) {
    await setBackend(backend, { quiet: true });
    const before = tf.memory().numTensors;
    const t = await preprocessImage(bytes, { mode: "clip" });
    assert.deepEqual(t.shape, [3, 336, 336]);
    assert.equal(t.dtype, "float32");
    assert.ok(maxAbsDiff(await t.data(), f32(e.clip!.pixel_values)) <= 1e-5, backend);
    t.dispose();
    assert.equal(tf.memory().numTensors, before, `${backend}: tensors left`);
  }
});
