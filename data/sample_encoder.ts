// The LLaVA encoder the loader calls per row: Arrow row -> ConversationRecord (records.ts) -> input ids + labels
// (conversation.ts, with the -200 image placeholder) + preprocessed images (preprocess.ts, [3, H, W] float32).
// A thin adapter: the loader itself only knows the Encoder type.
import { imageSha256 } from "./image.js";
import { readFile } from "node:fs/promises";
import path from "node:path";
import type { Sample, SampleImage } from "./batch.js";
import type { TokenizeOptions } from "./conversation.js";
import { tokenizeConversation } from "./conversation.js";
import type { Encoder, ItemWhere } from "./loader.js";
import type { PreprocessOptions } from "./preprocess.js";
import { preprocessToFloat32 } from "./preprocess.js";
import type { ColumnMapping, ImageRef } from "./records.js";
import { LLAVA_MAPPING, toConversationRecord, toVqaRecord } from "./records.js";
import { SHORT_ANSWER_PROMPT } from "./prompt.js";
import { RowError } from "./skip_report.js";
import type { Tokenizer } from "./tokenizer.js";

export interface LlavaEncoderOptions {
  tokenizer: Tokenizer;
  /** Template, maxLength, imageSeqLen (see TokenizeOptions). */
  tokenize: TokenizeOptions;
  /** Column mapping; default LLAVA_MAPPING (id, image, conversations). */
  mapping?: ColumnMapping;
  /** Image preprocessing (mode "clip" | "pad", preprocessor_config.json). */
  preprocess?: PreprocessOptions;
  /** Folder that image paths in the data are relative to (rows that carry paths instead of bytes). */
  imageDir?: string;
  /** Record each image's sha256 (the feature cache key). */
  hashImages?: boolean;
  /** Images whose features are cached are not decoded (their SampleImage has empty data). Implies hashImages. */
  isCached?: (sha256: string) => boolean;
}

function at(where: ItemWhere, column: string) {
  return { file: where.file, batch: where.batch, row: where.row, column };
}

async function imageBytes(ref: ImageRef, imageDir: string | undefined, where: ItemWhere, column: string): Promise<Uint8Array> {
  if (ref.kind === "bytes") return ref.bytes;
  if (imageDir === undefined) {
    throw new RowError("unreadable image", `image is a path ("${ref.path}") and no image folder was given`, at(where, column));
  }
  const file = path.resolve(imageDir, ref.path);
  try {
    return new Uint8Array(await readFile(file));
  } catch (e) {
    throw new RowError("unreadable image", `cannot read ${file}: ${(e as Error).message}`, at(where, column));
  }
}

/** An Encoder for LLaVA conversation rows. Images cut off by maxLength are not loaded. */
export function llavaEncoder(opts: LlavaEncoderOptions): Encoder<Record<string, unknown>> {
  const mapping = opts.mapping ?? LLAVA_MAPPING;
  const column = mapping.image ?? "image";
  return async (row, where): Promise<Sample> => {
    const rec = toConversationRecord(row, mapping, where);
    const tok = tokenizeConversation(
      { id: rec.id, image: rec.images.length > 0 ? column : undefined, messages: rec.conversations },
      opts.tokenizer,
      opts.tokenize,
    );
    const refs = rec.images.slice(0, tok.truncated ? tok.imagePositions.length : rec.images.length);
    const images: SampleImage[] = await Promise.all(
      refs.map(async (ref) => {
        const bytes = await imageBytes(ref, opts.imageDir, where, column);
        const sha256 = opts.hashImages || opts.isCached ? imageSha256(bytes) : undefined;
        if (sha256 !== undefined && opts.isCached?.(sha256)) return { data: new Float32Array(0), shape: [3, 0, 0] as const, sha256 };
        try {
          return { ...(await preprocessToFloat32(bytes, opts.preprocess)), sha256 };
        } catch (e) {
          throw new RowError("unreadable image", (e as Error).message, at(where, column));
        }
      }),
    );
    return { id: rec.id, inputIds: tok.inputIds, labels: tok.labels, images, truncated: tok.truncated };
  };
}

/** The answer most annotators gave (ties: the first such answer in list order), as LLaVA-style training targets use. */
export function majorityAnswer(answers: readonly string[]): string | undefined {
  const counts = new Map<string, number>();
  for (const a of answers) counts.set(a, (counts.get(a) ?? 0) + 1);
  let best: string | undefined;
  for (const [a, n] of counts) if (best === undefined || n > counts.get(best)!) best = a;
  return best;
}

/**
 * An Encoder for VQA-style rows (question, answers, image) as one-turn conversations: the question with the
 * short-answer post-prompt, answered by the majority answer. Used for held-out loss on VQA eval splits.
 */
export function vqaConversationEncoder(opts: LlavaEncoderOptions & { mapping: ColumnMapping }): Encoder<Record<string, unknown>> {
  const llava = llavaEncoder({ ...opts, mapping: LLAVA_MAPPING });
  return async (row, where) => {
    const rec = toVqaRecord(row, opts.mapping, where);
    const answer = majorityAnswer(rec.answers);
    if (answer === undefined) throw new RowError("bad value", "no answers to train on", at(where, opts.mapping.answers ?? "answers"));
    const image = rec.images[0];
    const asRow: Record<string, unknown> = {
      id: String(rec.id),
      image: image?.kind === "bytes" ? { bytes: image.bytes, path: image.path ?? null } : image?.kind === "path" ? image.path : null,
      conversations: [
        { from: "human", value: `${image ? "<image>\n" : ""}${rec.question}\n${SHORT_ANSWER_PROMPT}` },
        { from: "gpt", value: answer },
      ],
    };
    return llava(asRow, where);
  };
}
