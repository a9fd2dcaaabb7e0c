// Decode speed of sharp (the project's decoder) vs any pure-JS JPEG decoder that happens to be installed, and the
// time of the CLIP / LLaVA-pad preprocessing after decoding. Prints one line per measurement.
// Run: node dist/bench/decoders.js [image ...]   (default: the two COCO val2014 JPEGs in ../shared/golden/real).
import { packageRoot } from "../core/paths.js";
import { readFileSync } from "node:fs";
import path from "node:path";
import { pathToFileURL } from "node:url";
import sharp from "sharp";
import { decodeImage } from "../data/image.js";
import { preprocessRGB } from "../data/preprocess.js";

export interface DecoderBenchRow {
  what: string; // e.g. "sharp decode", "sharp decode x8 parallel", "jpeg-js decode", "preprocess clip"
  image: string;
  msPerImage: number;
  mbPerSecond: number; // encoded bytes per second (MB = 1e6 bytes)
  mpxPerSecond: number;
}

export function defaultBenchImages(): string[] {
  const dir = path.resolve(packageRoot(), "../shared/golden/real/images");
  return ["COCO_val2014_000000297078.jpg", "COCO_val2014_000000265719.jpg"].map((f) => path.join(dir, f));
}

/** Mean ms per call of `fn` after `warmup` untimed calls. */
async function timeIt(iterations: number, fn: () => unknown, warmup = 3): Promise<number> {
  for (let i = 0; i < warmup; i++) await fn();
  const t0 = performance.now();
  for (let i = 0; i < iterations; i++) await fn();
  return (performance.now() - t0) / iterations;
}

/** Pure-JS JPEG decoders, if any is installed (none is a dependency; jpeg-js is known not to match libjpeg-turbo). */
async function pureJsDecoders(): Promise<{ name: string; decode: (b: Uint8Array) => unknown }[]> {
  const found: { name: string; decode: (b: Uint8Array) => unknown }[] = [];
  const load = async (name: string): Promise<Record<string, unknown> | undefined> => {
    try {
      return (await import(name)) as Record<string, unknown>;
    } catch {
      return undefined;
    }
  };
  const jpegJs = await load("jpeg-js");
  const jd = (jpegJs?.decode ?? (jpegJs?.default as Record<string, unknown> | undefined)?.decode) as
    | ((b: Uint8Array, o: object) => unknown)
    | undefined;
  if (jd) found.push({ name: "jpeg-js", decode: (b) => jd(b, { useTArray: true, formatAsRGBA: false }) });
  return found;
}

export async function benchDecoders(opts: { images?: string[]; iterations?: number } = {}): Promise<DecoderBenchRow[]> {
  const images = opts.images ?? defaultBenchImages();
  const iterations = opts.iterations ?? 30;
  const rows: DecoderBenchRow[] = [];
  const others = await pureJsDecoders();
  const row = (what: string, file: string, bytes: number, px: number, ms: number): void => {
    rows.push({ what, image: path.basename(file), msPerImage: ms, mbPerSecond: bytes / 1e3 / ms, mpxPerSecond: px / 1e3 / ms });
  };
  for (const file of images) {
    const bytes = new Uint8Array(readFileSync(file));
    const img = await decodeImage(bytes);
    const px = img.width * img.height;
    row("sharp decode (decodeImage)", file, bytes.length, px, await timeIt(iterations, () => decodeImage(bytes)));
    row("sharp raw decode only", file, bytes.length, px, await timeIt(iterations, () => sharp(bytes, { ignoreIcc: true }).raw().toBuffer()));
    const par = 8;
    const msPar = await timeIt(Math.max(1, Math.ceil(iterations / par)), () => Promise.all(Array.from({ length: par }, () => decodeImage(bytes))));
    row(`sharp decode, ${par} in parallel (per image)`, file, bytes.length, px, msPar / par);
    for (const d of others) row(`${d.name} decode`, file, bytes.length, px, await timeIt(iterations, () => d.decode(bytes)));
    row("preprocess clip (after decode)", file, bytes.length, px, await timeIt(iterations, () => preprocessRGB(img, { mode: "clip" })));
    row("preprocess pad (after decode)", file, bytes.length, px, await timeIt(iterations, () => preprocessRGB(img, { mode: "pad" })));
  }
  return rows;
}

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  const rows = await benchDecoders(args.length ? { images: args } : {});
  const others = await pureJsDecoders();
  if (!others.length) {
    console.log("no pure-JS JPEG decoder installed: sharp only. (jpeg-js 0.4.4 lacks libjpeg-turbo's fancy chroma");
    console.log("upsampling: up to 22 levels off on colour edges, 0.20 in pixel_values; see golden/preprocess/README.md)");
  }
  console.log(`sharp ${sharp.versions.sharp}, libvips ${sharp.versions.vips}, threads ${sharp.concurrency()}`);
  for (const r of rows) {
    console.log(
      `${r.what.padEnd(42)} ${r.image.padEnd(30)} ${r.msPerImage.toFixed(2).padStart(7)} ms/img ` +
        `${r.mbPerSecond.toFixed(1).padStart(6)} MB/s ${r.mpxPerSecond.toFixed(1).padStart(6)} Mpx/s`,
    );
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(path.resolve(process.argv[1])).href) {
  main().catch((e: unknown) => {
    console.error(e);
    process.exit(1);
  });
}
