// Image-token splicing (LLaVA's prepare_inputs_labels_for_multimodal): each IMAGE_TOKEN_INDEX (-200) in a row of
// input ids becomes the T projected visual tokens of one image, the label there -100, and the rows are padded to one
// length (right padding for training, left for generation) with an attention mask.
// planSplice does the index bookkeeping on plain arrays; spliceImageTokens builds the embeddings from text slices,
// visual slices and zero padding with concat (differentiable without a gather gradient, which wasm lacks).
import { tf } from "../core/backend.js";
import { IGNORE_INDEX, IMAGE_TOKEN_INDEX } from "../data/conversation.js";

export type PadSide = "right" | "left";

/** One piece of a spliced row, in order. */
export type SpliceSegment =
  | { kind: "text"; start: number; length: number } // rows of the flat text-id list (SplicePlan.textIds)
  | { kind: "image"; image: number; length: number } // all T tokens of visual row `image`
  | { kind: "pad"; length: number };

export interface ImageSpan {
  row: number;
  /** Position of the first visual token in the padded sequence. */
  start: number;
  length: number;
  /** Visual row (index into the [B_img, T, D] tensor). */
  image: number;
}

export interface SplicePlan {
  /** Padded length L. */
  length: number;
  /** Every real text id of the batch, row by row (what gets embedded). */
  textIds: number[];
  /** Per row, the segments that make it up (their lengths sum to L). */
  segments: SpliceSegment[][];
  /** [B][L] 1 = real (text or visual), 0 = padding. */
  mask: number[][];
  /** [B][L] labels with -100 at visual and pad positions; only when labels were given. */
  labels?: number[][];
  /** [B][...] positions of visual tokens in the padded sequence, ascending. */
  visualPositions: number[][];
  /** Every image placement, in row then position order. */
  imageSpans: ImageSpan[];
  /** Real (unpadded) length of each row. */
  lengths: number[];
}

export interface SpliceOptions {
  /** Labels aligned with inputIds (-100 where not trained). */
  labels?: number[][];
  /** Mask aligned with inputIds (an already collated batch): positions with 0 are padding and are dropped first. */
  attentionMask?: number[][];
  /** Which visual row each -200 uses, in row-major order of the -200s; default 0, 1, 2, ... */
  imageRows?: number[];
  /** "right" (training, default) or "left" (generation). */
  padSide?: PadSide;
  /** Pad to at least this length. */
  minLength?: number;
  /** Vocabulary size, to check ids (optional). */
  vocab?: number;
}

/**
 * The splice plan for rows of ids (pure bookkeeping, no tensors). `tokensPerImage` = T, `numImages` = B_img of the
 * visual tensor (0 when there is none). Throws naming row and position on a bad id or a -200 without an image.
 */
export function planSplice(inputIds: readonly (readonly number[])[], tokensPerImage: number, numImages: number, opts: SpliceOptions = {}): SplicePlan {
  const side = opts.padSide ?? "right";
  if (side !== "right" && side !== "left") throw new RangeError(`splice: padSide must be "right" or "left", got "${String(side)}"`);
  if (inputIds.length === 0) throw new RangeError("splice: no rows");
  if (opts.labels && opts.labels.length !== inputIds.length) throw new RangeError(`splice: ${opts.labels.length} label rows for ${inputIds.length} id rows`);
  if (opts.attentionMask && opts.attentionMask.length !== inputIds.length) throw new RangeError(`splice: ${opts.attentionMask.length} mask rows for ${inputIds.length} id rows`);
  const placeholders = inputIds.reduce((n, row) => n + row.filter((t) => t === IMAGE_TOKEN_INDEX).length, 0);
  const imageRows = opts.imageRows ?? Array.from({ length: placeholders }, (_, i) => i);
  if (imageRows.length !== placeholders) {
    throw new RangeError(`splice: ${placeholders} image placeholder(s) (${IMAGE_TOKEN_INDEX}) in inputIds but imageRows has ${imageRows.length} entries`);
  }
  if (opts.imageRows === undefined && placeholders !== numImages) {
    throw new RangeError(`splice: ${placeholders} image placeholder(s) (${IMAGE_TOKEN_INDEX}) in inputIds but ${numImages} image(s) of visual tokens`);
  }

  // Per row: segments without padding, labels, lengths.
  const textIds: number[] = [];
  const rows: { segs: SpliceSegment[]; labels: number[]; length: number; spans: { offset: number; image: number }[] }[] = [];
  let next = 0; // next entry of imageRows
  inputIds.forEach((row, r) => {
    const lab = opts.labels?.[r];
    const msk = opts.attentionMask?.[r];
    if (lab && lab.length !== row.length) throw new RangeError(`splice: row ${r} has ${row.length} ids but ${lab.length} labels`);
    if (msk && msk.length !== row.length) throw new RangeError(`splice: row ${r} has ${row.length} ids but ${msk.length} mask entries`);
    const segs: SpliceSegment[] = [];
    const labels: number[] = [];
    const spans: { offset: number; image: number }[] = [];
    let length = 0;
    row.forEach((id, i) => {
      if (msk && !msk[i]) return; // padding of an already collated row
      if (id === IMAGE_TOKEN_INDEX) {
        const image = imageRows[next++]!;
        if (!Number.isInteger(image) || image < 0 || image >= numImages) {
          throw new RangeError(`splice: row ${r}, position ${i}: image placeholder uses visual row ${image}, but there are ${numImages} image(s) of visual tokens`);
        }
        spans.push({ offset: length, image });
        segs.push({ kind: "image", image, length: tokensPerImage });
        for (let t = 0; t < tokensPerImage; t++) labels.push(IGNORE_INDEX);
        length += tokensPerImage;
        return;
      }
      if (!Number.isInteger(id) || id < 0 || (opts.vocab !== undefined && id >= opts.vocab)) {
        throw new RangeError(`splice: row ${r}, position ${i}: id ${id} is not a token id${opts.vocab !== undefined ? ` (vocabulary 0..${opts.vocab - 1})` : ""} nor ${IMAGE_TOKEN_INDEX}`);
      }
      const last = segs[segs.length - 1];
      if (last?.kind === "text") last.length++;
      else segs.push({ kind: "text", start: textIds.length, length: 1 });
      textIds.push(id);
      labels.push(lab ? lab[i]! : IGNORE_INDEX);
      length++;
    });
    if (length === 0) throw new RangeError(`splice: row ${r} has no real token`);
    rows.push({ segs, labels, length, spans });
  });

  const L = Math.max(opts.minLength ?? 0, ...rows.map((r) => r.length));
  const plan: SplicePlan = { length: L, textIds, segments: [], mask: [], visualPositions: [], imageSpans: [], lengths: rows.map((r) => r.length) };
  if (opts.labels) plan.labels = [];
  rows.forEach((row, r) => {
    const padLen = L - row.length;
    const shift = side === "left" ? padLen : 0;
    const pad: SpliceSegment[] = padLen ? [{ kind: "pad", length: padLen }] : [];
    const padOnes = new Array<number>(padLen).fill(0);
    plan.segments.push(side === "left" ? [...pad, ...row.segs] : [...row.segs, ...pad]);
    const real = new Array<number>(row.length).fill(1);
    plan.mask.push(side === "left" ? [...padOnes, ...real] : [...real, ...padOnes]);
    const padLabels = new Array<number>(padLen).fill(IGNORE_INDEX);
    plan.labels?.push(side === "left" ? [...padLabels, ...row.labels] : [...row.labels, ...padLabels]);
    const positions: number[] = [];
    for (const s of row.spans) {
      plan.imageSpans.push({ row: r, start: s.offset + shift, length: tokensPerImage, image: s.image });
      for (let t = 0; t < tokensPerImage; t++) positions.push(s.offset + shift + t);
    }
    plan.visualPositions.push(positions);
  });
  return plan;
}

export interface SpliceResult extends Omit<SplicePlan, "segments" | "textIds" | "mask"> {
  inputsEmbeds: tf.Tensor3D; // [B, L, D]
  attentionMask: tf.Tensor2D; // [B, L] float32
  /** The plain mask [B][L] (same values as attentionMask). */
  mask: number[][];
}

/**
 * Expands each -200 of `inputIds` into the T visual embeddings of its image (`visual` [B_img, T, D], already
 * projected), embeds the text with `lm.embed`, pads the rows and returns the embeddings and mask (new tensors, the
 * caller disposes them) with the plan's labels and positions. Differentiable with respect to `visual`.
 */
export function spliceImageTokens(
  lm: { embed(ids: tf.Tensor2D): tf.Tensor3D },
  inputIds: readonly (readonly number[])[],
  visual: tf.Tensor3D | undefined,
  imageRows?: number[],
  opts: Omit<SpliceOptions, "imageRows"> & { hidden?: number } = {},
): SpliceResult {
  if (visual && visual.rank !== 3) throw new RangeError(`splice: visual tokens must be [B_img, T, D], got [${visual.shape}]`);
  const [nImg, T] = visual ? visual.shape : [0, 0];
  const plan = planSplice(inputIds, T, nImg, { ...opts, imageRows });
  const B = inputIds.length;
  const L = plan.length;
  const inputsEmbeds = tf.tidy(() => {
    const text = plan.textIds.length
      ? (tf.squeeze(lm.embed(tf.tensor2d(plan.textIds, [1, plan.textIds.length], "int32")), [0]) as tf.Tensor2D) // [N_text, D]
      : undefined;
    const D = text?.shape[1] ?? visual?.shape[2] ?? opts.hidden;
    if (D === undefined) throw new RangeError("splice: no text and no visual tokens");
    if (visual && visual.shape[2] !== D) throw new RangeError(`splice: visual tokens are ${visual.shape[2]} wide but the text embeddings are ${D}`);
    const images = visual ? (tf.unstack(visual, 0) as tf.Tensor2D[]) : []; // each [T, D]
    const rowsOut = plan.segments.map((segs) => {
      const parts = segs.map((s): tf.Tensor2D => {
        if (s.kind === "text") return tf.slice(text!, [s.start, 0], [s.length, D]);
        if (s.kind === "image") return images[s.image]!;
        return tf.zeros([s.length, D]);
      });
      return parts.length === 1 ? parts[0]! : tf.concat(parts, 0); // [L, D]
    });
    return tf.stack(rowsOut, 0) as tf.Tensor3D; // [B, L, D]
  });
  const attentionMask = tf.tensor2d(plan.mask.flat(), [B, L], "float32");
  const { segments: _s, textIds: _t, ...rest } = plan;
  return { ...rest, inputsEmbeds, attentionMask };
}
