// Test data for the Arrow shard tests: temp folders, the real fixture files, HF features for LLaVA / VQAv2 rows,
// and a streaming generator of large binary shards.
import { readFileSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { writeArrowFile } from "../../data/write_shards.js";
import type { ShardWriteResult } from "../../data/write_shards.js";
import { goldenDir } from "../helpers.js";

export const realDir = (...p: string[]) => path.join(goldenDir(), "real", ...p);
export const realDatasets = (...p: string[]) => realDir("datasets", ...p);

/** A fresh temp folder and its remover. */
export async function tmpDir(prefix: string): Promise<{ dir: string; remove: () => Promise<void> }> {
  const dir = await mkdtemp(path.join(os.tmpdir(), `vzt-${prefix}-`));
  return { dir, remove: () => rm(dir, { recursive: true, force: true }) };
}

/** The two real COCO JPEGs of the fixture folder. */
export function realImages(): { name: string; bytes: Uint8Array }[] {
  return ["COCO_val2014_000000297078.jpg", "COCO_val2014_000000265719.jpg"].map((name) => ({
    name,
    bytes: new Uint8Array(readFileSync(realDir("images", name))),
  }));
}

const str = { dtype: "string", _type: "Value" };
const int64 = { dtype: "int64", _type: "Value" };

/** LLaVA conversation rows with an HF Image column. */
export const LLAVA_FEATURES = {
  id: str,
  image: { _type: "Image" },
  conversations: [{ from: str, value: str }],
};

/** lmms-lab/VQAv2 columns (subset): answers as list<struct<answer, answer_confidence, answer_id>>. */
export const VQAV2_FEATURES = {
  question_id: int64,
  question: str,
  answers: { feature: { answer: str, answer_confidence: str, answer_id: int64 }, _type: "List" },
  image: { _type: "Image" },
};

/** Bytes of row `i` of a generated binary shard: the row index in the first 4 bytes, then (i * 7) & 255. */
export function binaryPayload(i: number, n: number): Uint8Array {
  const b = new Uint8Array(n).fill((i * 7) & 255, 4);
  new DataView(b.buffer).setUint32(0, i, true);
  return b;
}

/** Writes `rows` rows of `rowBytes` binary each (+ an int64 index) to `file`, streaming one batch at a time. */
export async function writeBinaryShard(file: string, rows: number, rowBytes: number, batchRows = 100): Promise<ShardWriteResult> {
  function* gen() {
    for (let i = 0; i < rows; i++) yield { idx: i, payload: binaryPayload(i, rowBytes) };
  }
  return writeArrowFile(file, { idx: int64, payload: { dtype: "binary", _type: "Value" } }, gen(), { batchRows });
}
