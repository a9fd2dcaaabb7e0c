// The reducer's pre-projector visual tokens of a batch: from the feature cache, or the frozen tower + reducer
// (outside any gradient tape).
import { tf } from "../core/backend.js";
import type { Batch } from "../data/batch.js";
import { encodeImages, reduceFeatures } from "../models/llava.js";
import { computeOrLoadFeatures } from "./feature_cache.js";
import type { Run } from "./setup.js";

/** The reducer's pre-projector tokens [B_img, T, Cv] for a batch: from the feature cache or the frozen tower. */
export async function visualTokens(run: Run, b: Batch): Promise<tf.Tensor3D | undefined> {
  const [n, , H, W] = b.pixelShape;
  if (n === 0) return undefined;
  const compute = (px: tf.Tensor4D) =>
    tf.tidy(() => {
      const vision = encodeImages(run.vlm.tower, px, run.cfg.model.vision_layer);
      return reduceFeatures(run.reducer, vision).tokens;
    });
  if (!run.cache) return tf.tidy(() => compute(tf.tensor4d(b.pixelValues, [n, 3, H, W])));
  const size = 3 * H * W;
  const images = b.imageShas.map((sha, i) => ({ sha, pixelValues: () => ({ data: b.pixelValues.subarray(i * size, (i + 1) * size), shape: [3, H, W] as [number, number, number] }) }));
  return computeOrLoadFeatures(run.cache, images, compute);
}

