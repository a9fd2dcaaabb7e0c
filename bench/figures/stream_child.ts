// Child process of figure 8: streams every conversation record of an Arrow dataset folder (data/records.ts over
// ShardSet: one record batch in memory at a time) touching each image's bytes, and prints one JSON line with its
// RSS before the first row and the largest RSS seen while streaming. A fresh process, so nothing the parent holds
// (models, the wasm heap, garbage from writing the shards) moves the numbers.
// Run: node dist/bench/figures/stream_child.js DIR
import { pathToFileURL } from "node:url";
import { openShards } from "../../data/arrow_shards.js";
import { conversationRecords, LLAVA_MAPPING } from "../../data/records.js";

export interface StreamReport {
  rows: number;
  /** Image bytes touched. */
  imageBytes: number;
  ms: number;
  rssBefore: number;
  rssMax: number;
  /** V8 heap used at the end (after the stream), for context. */
  heapUsedEnd: number;
}

export async function streamRecords(dir: string): Promise<StreamReport> {
  const set = await openShards(dir);
  const rssBefore = process.memoryUsage.rss();
  let rssMax = rssBefore;
  let rows = 0;
  let imageBytes = 0;
  let checksum = 0;
  const t0 = performance.now();
  for await (const rec of conversationRecords(set, LLAVA_MAPPING)) {
    for (const im of rec.images) {
      if (im.kind === "bytes") {
        imageBytes += im.bytes.length;
        checksum = (checksum + im.bytes[im.bytes.length >> 1]!) | 0;
      }
    }
    if (++rows % 8 === 0) rssMax = Math.max(rssMax, process.memoryUsage.rss());
  }
  rssMax = Math.max(rssMax, process.memoryUsage.rss());
  if (checksum === 0.5) process.stderr.write(""); // keep the reads observable
  return { rows, imageBytes, ms: performance.now() - t0, rssBefore, rssMax, heapUsedEnd: process.memoryUsage().heapUsed };
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? "").href) {
  const dir = process.argv[2];
  if (!dir) {
    process.stderr.write("usage: node dist/bench/figures/stream_child.js DIR\n");
    process.exit(2);
  }
  streamRecords(dir).then(
    (r) => process.stdout.write(JSON.stringify(r) + "\n"),
    (e) => {
      process.stderr.write(((e as Error).stack ?? String(e)) + "\n");
      process.exit(1);
    },
  );
}
