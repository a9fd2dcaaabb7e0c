// A collated Batch (plain typed arrays) -> tf tensors on the current backend; the caller disposes them.
import { tf } from "../core/backend.js";
import type { Batch } from "./batch.js";

export interface BatchTensors {
  inputIds: tf.Tensor2D; // [B, T] int32 (-200 where an image goes)
  labels: tf.Tensor2D; // [B, T] int32 (-100 where not trained)
  attentionMask: tf.Tensor2D; // [B, T] int32
  /** [B_img, 3, H, W] float32; undefined when no row of the batch has an image. */
  pixelValues: tf.Tensor4D | undefined;
}

/** Tensors of `batch`; dispose them with disposeBatchTensors (or tf.dispose on each). */
export function batchToTensors(batch: Batch): BatchTensors {
  const shape: [number, number] = [batch.batchSize, batch.seqLen];
  return {
    inputIds: tf.tensor2d(batch.inputIds, shape, "int32"),
    labels: tf.tensor2d(batch.labels, shape, "int32"),
    attentionMask: tf.tensor2d(batch.attentionMask, shape, "int32"),
    pixelValues: batch.pixelShape[0] > 0 ? tf.tensor4d(batch.pixelValues, batch.pixelShape, "float32") : undefined,
  };
}

export function disposeBatchTensors(t: BatchTensors): void {
  tf.dispose([t.inputIds, t.labels, t.attentionMask, ...(t.pixelValues ? [t.pixelValues] : [])]);
}
