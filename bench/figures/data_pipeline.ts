// Figure 8: the data pipeline.
//  a. samples/s of the loader alone (Arrow read + PNG decode + CLIP preprocess + tokenise + collate, the demo's
//     encoder and prefetch) / samples/s the demo training steps consume (demo_steps.ts, no feature cache), in one
//     paired loop in this process. Target >= 5.
//  b. RSS growth of a fresh process streaming `streamBytes` of generated Arrow shards (LLaVA rows with 336x336
//     noise PNGs embedded, in os.tmpdir(), deleted after). Target < 200 MB.
import { execFile } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import sharp from "sharp";
import { padTokenIdOf } from "../../data/batch.js";
import { createLoader, shardSetSource, type BatchLoader } from "../../data/loader.js";
import { LLAVA_PREPARED_FEATURES } from "../../data/prepare.js";
import { llavaEncoder } from "../../data/sample_encoder.js";
import { writeDatasetFolder, type Row } from "../../data/write_shards.js";
import { createRng } from "../../core/rng.js";
import { cleanup, setup, type Run } from "../../train/setup.js";
import type { BenchContext } from "../context.js";
import { demoConfig, ensureDemoAssets } from "../demo_assets.js";
import { demoSteps } from "../demo_steps.js";
import type { FigureResult, Row as TableRow } from "../results.js";
import { pairedRatios, pairedRuns, summarize } from "../timing.js";
import type { StreamReport } from "./stream_child.js";

const execFileAsync = promisify(execFile);

/** A 336x336 RGB PNG of uniform noise (incompressible: about 340 KB). */
async function noisePng(seed: number): Promise<Uint8Array> {
  const rng = createRng(seed);
  const raw = new Uint8Array(336 * 336 * 3);
  for (let i = 0; i < raw.length; i++) raw[i] = Math.floor(rng.uniform(0, 256));
  return new Uint8Array(await sharp(raw, { raw: { width: 336, height: 336, channels: 3 } }).png({ compressionLevel: 1 }).toBuffer());
}

/** Writes about `bytes` of LLaVA rows (id, image, conversations) to a save_to_disk folder; returns its rows. */
export async function writeStreamShards(dir: string, bytes: number): Promise<{ rows: number; bytes: number }> {
  const images = await Promise.all([1, 2, 3, 4].map(noisePng));
  const per = images[0]!.length + 200;
  const n = Math.max(1, Math.ceil(bytes / per));
  function* rows(): Generator<Row> {
    for (let i = 0; i < n; i++) {
      yield {
        id: `s${i}`,
        image: { bytes: images[i % images.length]!, path: `noise/${i}.png` },
        conversations: [
          { from: "human", value: "<image>\nWhat shapes are in the image? Answer with a short phrase." },
          { from: "gpt", value: `Noise number ${i}.` },
        ],
      };
    }
  }
  const r = await writeDatasetFolder(dir, LLAVA_PREPARED_FEATURES, rows(), { shardBytes: 256e6, overwrite: true });
  return { rows: r.rows, bytes: r.shards.reduce((a, s) => a + s.bytes, 0) };
}

async function streamRss(ctx: BenchContext): Promise<{ rows: TableRow[]; ratio: number; details: Record<string, unknown> }> {
  const dir = await mkdtemp(path.join(os.tmpdir(), "vzt-bench-stream-"));
  try {
    ctx.progress(`figure 8: writing ${(ctx.settings.streamBytes / 1e6).toFixed(0)} MB of Arrow shards to ${dir}`);
    const written = await writeStreamShards(path.join(dir, "train"), ctx.settings.streamBytes);
    ctx.progress(`figure 8: streaming ${written.rows} rows (${(written.bytes / 1e6).toFixed(0)} MB) in a child process`);
    const child = path.join(path.dirname(fileURLToPath(import.meta.url)), "stream_child.js");
    const { stdout } = await execFileAsync(process.execPath, [child, path.join(dir, "train")], { maxBuffer: 1 << 20 });
    const r = JSON.parse(stdout.trim().split("\n").pop()!) as StreamReport;
    const growth = (r.rssMax - r.rssBefore) / 1e6;
    return {
      ratio: growth,
      rows: [
        { figure: "8 stream RSS growth", value: growth, unit: "MB", target: "< 200", pass: growth < 200, shapes: `${(written.bytes / 1e6).toFixed(0)} MB, ${written.rows} rows, ${(written.bytes / 1e3 / r.ms).toFixed(0)} MB/s` },
      ],
      details: { written, stream: r, rss_growth_mb: growth },
    };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

export async function dataFigure(ctx: BenchContext): Promise<FigureResult> {
  const { repeats, warmup, backend } = ctx.settings;
  const assets = await ensureDemoAssets(ctx.progress);
  const out = await mkdtemp(path.join(os.tmpdir(), "vzt-bench-data-"));
  let demo: Run | undefined;
  let loader: BatchLoader<Record<string, unknown>> | undefined;
  let a: { ratio: number; rows: TableRow[]; details: Record<string, unknown> };
  try {
    demo = await setup(demoConfig(assets, out, backend), { quiet: true });
    const d = demo;
    const micro = d.cfg.train.micro_batch_size;
    const dataBatches = ctx.settings.quick ? 4 : 8;
    const trainSteps = ctx.settings.quick ? 1 : 2;
    const data = (loader = createLoader({
      source: shardSetSource(d.data),
      encode: llavaEncoder({ ...d.encoderOptions, hashImages: false, isCached: undefined }),
      batchSize: micro,
      collate: { padId: padTokenIdOf(d.vlm.tokenizer!) },
      seed: d.cfg.seed + 1,
      epochs: Infinity,
      shuffle: "auto",
      prefetch: d.cfg.data.prefetch,
    }));
    ctx.progress(`figure 8: loader alone (${dataBatches} batches of ${micro}) vs demo training (${trainSteps} step(s) of ${demo.cfg.train.global_batch_size}), ${warmup} warm-up + ${repeats} paired rounds`);
    const samples = { data: [] as number[], train: [] as number[] };
    const { times } = await pairedRuns(
      {
        data: async () => {
          let n = 0;
          for (let i = 0; i < dataBatches; i++) n += (await data.next()).value!.batchSize;
          samples.data.push(n);
        },
        train: async () => samples.train.push(await demoSteps(d, trainSteps)),
      },
      { repeats, warmup },
    );
    const rate = (k: "data" | "train") => times[k]!.map((ms, i) => samples[k][i + warmup]! / (ms / 1000));
    const dataRate = rate("data");
    const trainRate = rate("train");
    const ratio = summarize(pairedRatios(dataRate, trainRate));
    const shapes = `demo data (shapes, 336x336 PNG), batch ${micro}, prefetch ${d.cfg.data.prefetch}`;
    a = {
      ratio: ratio.median,
      rows: [
        { figure: "8 data / train samples/s", value: ratio.median, target: ">= 5", pass: ratio.median >= 5, stats: ratio, shapes },
        { figure: "8 loader alone", value: summarize(dataRate).median, unit: "samples/s", target: "", stats: summarize(dataRate), shapes: "Arrow read + decode + preprocess + tokenise + collate" },
        { figure: "8 demo training", value: summarize(trainRate).median, unit: "samples/s", target: "", stats: summarize(trainRate), shapes: "tower + VisionZip + projector + LLM fwd/bwd + AdamW" },
      ],
      details: { samples_per_s: { data: summarize(dataRate), train: summarize(trainRate) }, per_round: { data: dataRate, train: trainRate } },
    };
  } finally {
    try {
      await loader?.close();
      if (demo) await cleanup(demo);
    } finally {
      await rm(out, { recursive: true, force: true });
    }
  }
  const b = await streamRss(ctx);
  return {
    group: "data",
    ratios: { data_vs_train: a.ratio, stream_rss_growth_mb: b.ratio },
    rows: [...a.rows, ...b.rows],
    details: { pipeline: a.details, stream: b.details },
  };
}
