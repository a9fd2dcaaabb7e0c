// Image decoding: JPEG / PNG / WebP bytes -> 8-bit RGB, HWC, exactly as PIL's `Image.open(f).convert("RGB")`.
//
// Decoder: sharp (libvips 8.18 with libjpeg-turbo-compatible mozjpeg, libspng, libwebp). At its defaults
// (accurate integer IDCT, "fancy" triangular chroma upsampling) it is bit-identical to Pillow / libjpeg-turbo on
// the golden JPEG (`case_1.jpg`: 0 differing values) and on PNG, which is what the LLaVA / HF pipeline feeds to
// the CLIP preprocessor. Pure-JS decoders are not an option: jpeg-js (0.4.4) has no fancy upsampling and is up
// to 22 levels off on colour edges (0.20 in pixel_values, see ../shared/golden/preprocess/README.md), and none is
// installed here. Measured with bench/decoders.ts on the 2-core dev machine (loaded by other jobs), the two COCO
// val2014 JPEGs (500x375 / 85 KB and 640x480 / 96 KB): decodeImage takes 4.1-4.9 ms per image (17-23 MB/s of
// JPEG bytes, 38-75 Mpx/s) from one caller and 2.8-3.4 ms per image with 8 in flight (libvips decodes on libuv's
// thread pool). The Pillow-exact preprocessing after it (data/preprocess.ts, plain JS) costs more: 9-16 ms (clip)
// and 11-20 ms (pad) per image.
//
// PIL rules kept here (no EXIF rotation, no colour management):
// - EXIF orientation is NOT applied (HF / PIL do not rotate); embedded ICC profiles are ignored (`ignoreIcc`):
//   both COCO JPEGs carry one, and sharp's default ICC -> sRGB transform moves their pixels by up to 24 levels.
// - RGBA / LA: alpha dropped, not composited; palette: lookup, tRNS ignored; L: grey copied to R, G and B.
// - 16-bit RGB(A) / LA PNG: the high byte (PIL unpacks "RGB;16B" etc. by taking the MSB).
// - 16-bit grey PNG: PIL opens it as mode "I" (32-bit int) and convert("RGB") CLIPS to 0..255 (not >> 8).
// - CMYK JPEG: converted by libvips' CMYK profile, not PIL's naive formula (rare in VLM data; not bit-exact).
import { createHash } from "node:crypto";
import sharp, { type Sharp } from "sharp";
import { DataError } from "../core/errors.js";

/** 8-bit RGB pixels, row-major HWC: index (y * width + x) * 3 + c. */
export interface RGBImage {
  data: Uint8Array; // [H, W, 3]
  width: number;
  height: number;
}

export type ImageFormat = "jpeg" | "png" | "webp";

/** The container format from the magic bytes, or undefined when it is none of JPEG / PNG / WebP. */
export function sniffImageFormat(bytes: Uint8Array): ImageFormat | undefined {
  const b = bytes;
  if (b.length >= 3 && b[0] === 0xff && b[1] === 0xd8 && b[2] === 0xff) return "jpeg";
  if (b.length >= 8 && b[0] === 0x89 && b[1] === 0x50 && b[2] === 0x4e && b[3] === 0x47) return "png";
  if (b.length >= 12 && ascii(b, 0, 4) === "RIFF" && ascii(b, 8, 12) === "WEBP") return "webp";
  return undefined;
}

function ascii(b: Uint8Array, start: number, end: number): string {
  return String.fromCharCode(...b.subarray(start, end));
}

/** PNG IHDR bit depth and colour type (bytes 24 and 25), or undefined when the header is too short. */
function pngHeader(b: Uint8Array): { bitDepth: number; colourType: number } | undefined {
  if (b.length < 26 || ascii(b, 12, 16) !== "IHDR") return undefined;
  return { bitDepth: b[24]!, colourType: b[25]! };
}

/**
 * Decodes JPEG, PNG or WebP bytes to RGB (HWC uint8), as PIL's `convert("RGB")` would.
 * Throws a DataError naming the format and the decoder's reason; the caller adds file / row context.
 */
export async function decodeImage(bytes: Uint8Array): Promise<RGBImage> {
  const format = sniffImageFormat(bytes);
  if (!format) {
    const head = Array.from(bytes.subarray(0, 8), (v) => v.toString(16).padStart(2, "0")).join(" ");
    throw new DataError(
      `unsupported or corrupt image: not JPEG, PNG or WebP (${bytes.length} bytes, starts with ${head || "nothing"})`,
    );
  }
  const png = format === "png" ? pngHeader(bytes) : undefined;
  try {
    // failOn "truncated": refuse truncated files like PIL (LOAD_TRUNCATED_IMAGES off), but accept what libjpeg
    // only warns about (e.g. extraneous bytes before a marker), as PIL does.
    const input = sharp(bytes, { ignoreIcc: true, failOn: "truncated" });
    if (png && png.bitDepth === 16 && png.colourType === 0) return await decodeGrey16(input);
    const { data, info } = await input.removeAlpha().toColourspace("srgb").raw().toBuffer({ resolveWithObject: true });
    const out = toRGB(new Uint8Array(data.buffer, data.byteOffset, data.length), info.width, info.height, info.channels);
    return { data: out, width: info.width, height: info.height };
  } catch (e) {
    if (e instanceof DataError) throw e;
    const why = ((e as Error).message ?? String(e)).split("\n")[0];
    throw new DataError(`cannot decode ${format.toUpperCase()} image (${bytes.length} bytes): ${why}`);
  }
}

/** 16-bit grey PNG: PIL mode "I", and "I" -> "RGB" clamps each value to 0..255. */
async function decodeGrey16(input: Sharp): Promise<RGBImage> {
  const { data, info } = await input
    .removeAlpha()
    .toColourspace("grey16")
    .raw({ depth: "ushort" })
    .toBuffer({ resolveWithObject: true });
  if (info.channels !== 1) throw new DataError(`16-bit grey PNG decoded to ${info.channels} channels, expected 1`);
  const n = info.width * info.height;
  const grey = new Uint16Array(n);
  new Uint8Array(grey.buffer).set(data.subarray(0, n * 2)); // native byte order, as sharp writes it
  const out = new Uint8Array(n * 3);
  for (let i = 0; i < n; i++) {
    const v = Math.min(grey[i]!, 255);
    out[i * 3] = v;
    out[i * 3 + 1] = v;
    out[i * 3 + 2] = v;
  }
  return { data: out, width: info.width, height: info.height };
}

/** Raw sharp output (1 or 3 channels after removeAlpha + sRGB) to 3-channel HWC. */
function toRGB(data: Uint8Array, width: number, height: number, channels: number): Uint8Array {
  const n = width * height;
  if (channels === 3) return data.length === n * 3 ? data : data.slice(0, n * 3);
  if (channels === 1) {
    const out = new Uint8Array(n * 3);
    for (let i = 0; i < n; i++) {
      const v = data[i]!;
      out[i * 3] = v;
      out[i * 3 + 1] = v;
      out[i * 3 + 2] = v;
    }
    return out;
  }
  throw new DataError(`decoded image has ${channels} channels after RGB conversion, expected 3`);
}

/** sha256 (hex) of encoded image bytes: how the feature cache and reports identify an image. */
export function imageSha256(bytes: ArrayBufferView): string {
  return createHash("sha256").update(new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength)).digest("hex");
}
