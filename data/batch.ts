// Collate: encoded samples (token ids, labels, preprocessed images) -> one padded batch of plain typed arrays, so it
// can be built off the main thread and turned into tensors by the consumer (batch_tensors.ts).
// Right padding for training (LLaVA), left padding for generation; pad id from the tokenizer (pad ?? unk ?? 0),
// labels -100 on padding, attention mask 1 on real tokens. An image is one IMAGE_TOKEN_INDEX (-200) position in
// inputIds; the model splices its features in there.
import { DataError } from "../core/errors.js";
import { IGNORE_INDEX, IMAGE_TOKEN_INDEX } from "./conversation.js";

/** One preprocessed image, [3, H, W] float32 (preprocessToFloat32's result). */
export interface SampleImage {
  /** [3, H, W]; empty when the image was not decoded because its features are cached (see `sha256`). */
  data: Float32Array;
  shape: readonly [number, number, number];
  /** sha256 (hex) of the encoded image bytes: the feature cache's key. */
  sha256?: string;
}

/** Where a sample came from (row context for errors and for the batch). */
export interface SampleWhere {
  shard?: number;
  file?: string;
  batch?: number;
  /** Row within the file. */
  row?: number;
  epoch?: number;
  /** Position in the epoch order. */
  position?: number;
}

/** One encoded sample: the encoder's output. `images[k]` goes to the k-th -200 in inputIds. */
export interface Sample {
  id: string;
  inputIds: ArrayLike<number>;
  labels: ArrayLike<number>;
  /** Zero (text-only) or more images, one per IMAGE_TOKEN_INDEX in inputIds. */
  images?: readonly SampleImage[];
  truncated?: boolean;
}

export interface Batch {
  pixelValues: Float32Array; // [B_img, 3, H, W], images of all rows in row order
  pixelShape: [number, number, number, number];
  inputIds: Int32Array; // [B, T]
  labels: Int32Array; // [B, T]
  attentionMask: Int32Array; // [B, T]
  batchSize: number;
  seqLen: number;
  /** Per row, positions of the -200 placeholder(s) in inputIds (after padding). */
  imagePositions: number[][];
  /** Per image (row order), the sha256 of its bytes ("" when not computed). */
  imageShas: string[];
  /** Samples of this batch cut at the tokenizer's maxLength (the caller counts and warns). */
  truncated: number;
  hasImage: boolean[];
  ids: string[];
  where: SampleWhere[];
}

export interface CollateOptions {
  /** Token id of padding: tokenizer pad ?? unk ?? 0 (see padTokenIdOf). */
  padId: number;
  /** "right" (training, default) or "left" (batched generation). */
  padSide?: "right" | "left";
  /** Round the padded length up to a multiple of this (e.g. 8). */
  padToMultipleOf?: number;
  /** Pad to at least this length. */
  minLength?: number;
  /** [3, H, W] of images, for a batch that has none (pixelShape then [0, 3, H, W]). */
  imageShape?: readonly [number, number, number];
}

/** The pad id LLaVA uses: tokenizer pad ?? unk ?? 0. */
export function padTokenIdOf(tok: { padTokenId?: number | undefined; unkTokenId?: number | undefined }): number {
  return tok.padTokenId ?? tok.unkTokenId ?? 0;
}

function at(where: SampleWhere | undefined, id: string): { file?: string; batch?: number; row?: number } {
  return { file: where?.file ?? `sample ${JSON.stringify(id)}`, batch: where?.batch, row: where?.row };
}

/** Positions of IMAGE_TOKEN_INDEX in `ids`. */
export function imagePositionsOf(ids: ArrayLike<number>): number[] {
  const out: number[] = [];
  for (let i = 0; i < ids.length; i++) if (ids[i] === IMAGE_TOKEN_INDEX) out.push(i);
  return out;
}

/** Checks one sample (lengths, ids, images vs placeholders); DataError naming the row otherwise. */
export function checkSample(s: Sample, where?: SampleWhere): void {
  const w = at(where, s.id);
  if (s.inputIds.length === 0) throw new DataError(`sample ${JSON.stringify(s.id)}: empty inputIds`, w);
  if (s.labels.length !== s.inputIds.length) {
    throw new DataError(`sample ${JSON.stringify(s.id)}: ${s.labels.length} labels for ${s.inputIds.length} inputIds`, w);
  }
  for (let i = 0; i < s.inputIds.length; i++) {
    const v = s.inputIds[i]!;
    if (!Number.isInteger(v) || (v < 0 && v !== IMAGE_TOKEN_INDEX) || v > 0x7fffffff) {
      throw new DataError(`sample ${JSON.stringify(s.id)}: inputIds[${i}] = ${v} is not a token id`, w);
    }
  }
  const placeholders = imagePositionsOf(s.inputIds).length;
  const images = s.images ?? [];
  if (images.length !== placeholders) {
    throw new DataError(
      `sample ${JSON.stringify(s.id)}: ${images.length} image(s) but ${placeholders} image placeholder(s) (${IMAGE_TOKEN_INDEX}) in inputIds` +
        (s.truncated ? " (cut by maxLength)" : ""),
      w,
    );
  }
  for (const img of images) {
    const [c, h, wd] = img.shape;
    if (img.shape.length !== 3 || c !== 3 || img.data.length !== c * h * wd) {
      throw new DataError(`sample ${JSON.stringify(s.id)}: image of shape [${img.shape.join(", ")}] with ${img.data.length} values, expected [3, H, W]`, w);
    }
  }
}

/** Pads samples into one batch. `where[b]` (optional) is carried into the batch and named in errors. */
export function collate(samples: readonly Sample[], opts: CollateOptions, where: readonly SampleWhere[] = []): Batch {
  if (samples.length === 0) throw new RangeError("collate: no samples");
  const side = opts.padSide ?? "right";
  if (side !== "right" && side !== "left") throw new RangeError(`collate: padSide must be "right" or "left", got "${String(side)}"`);
  samples.forEach((s, b) => checkSample(s, where[b]));

  // Image shape: every image of the batch must agree.
  let imageShape = opts.imageShape;
  let nImages = 0;
  samples.forEach((s, b) => {
    for (const img of s.images ?? []) {
      nImages++;
      if (img.data.length === 0) continue; // not decoded (cached features): zeros in pixelValues
      if (imageShape && (img.shape[1] !== imageShape[1] || img.shape[2] !== imageShape[2])) {
        throw new DataError(
          `sample ${JSON.stringify(s.id)}: image [${img.shape.join(", ")}] differs from the batch's [${imageShape.join(", ")}]`,
          at(where[b], s.id),
        );
      }
      imageShape ??= img.shape;
    }
  });
  const [, H, W] = imageShape ?? [3, 0, 0];

  const B = samples.length;
  let T = Math.max(opts.minLength ?? 0, ...samples.map((s) => s.inputIds.length));
  const m = opts.padToMultipleOf ?? 1;
  if (!Number.isInteger(m) || m < 1) throw new RangeError(`collate: padToMultipleOf must be a positive integer, got ${m}`);
  T = Math.ceil(T / m) * m;

  const inputIds = new Int32Array(B * T).fill(opts.padId); // [B, T]
  const labels = new Int32Array(B * T).fill(IGNORE_INDEX); // [B, T]
  const attentionMask = new Int32Array(B * T); // [B, T]
  const pixelValues = new Float32Array(nImages * 3 * H * W); // [B_img, 3, H, W]
  const imagePositions: number[][] = [];
  const imageShas: string[] = [];
  let img = 0;
  samples.forEach((s, b) => {
    const n = s.inputIds.length;
    const start = b * T + (side === "left" ? T - n : 0);
    inputIds.set(s.inputIds, start);
    labels.set(s.labels, start);
    attentionMask.fill(1, start, start + n);
    const shift = side === "left" ? T - n : 0;
    imagePositions.push(imagePositionsOf(s.inputIds).map((p) => p + shift));
    for (const im of s.images ?? []) {
      imageShas.push(im.sha256 ?? "");
      if (im.data.length > 0) pixelValues.set(im.data, img * 3 * H * W);
      img++;
    }
  });

  return {
    pixelValues,
    pixelShape: [nImages, 3, H, W],
    inputIds,
    labels,
    attentionMask,
    batchSize: B,
    seqLen: T,
    imagePositions,
    imageShas,
    truncated: samples.filter((s) => s.truncated).length,
    hasImage: samples.map((s) => (s.images?.length ?? 0) > 0),
    ids: samples.map((s) => s.id),
    where: samples.map((_, b) => where[b] ?? {}),
  };
}
