// Per-layer key/value cache for incremental decoding. Each layer keeps its own keys, values and key mask, so later
// token pruning inside the LLM can give layers different lengths; positions are tracked per row, apart from lengths.
import { tf } from "../core/backend.js";

export interface LayerKV {
  keys: tf.Tensor4D; // [B, KV, S, D] (after RoPE)
  values: tf.Tensor4D; // [B, KV, S, D]
  keyMask: tf.Tensor2D; // [B, S] float32: 1 = real key, 0 = padding
}

/** Owns its tensors: forward replaces a layer's entry (disposing the old one); `dispose()` frees everything. */
export class KVCache {
  readonly layers: (LayerKV | undefined)[];
  /** [B, 1] float32: the RoPE position the next real token of each row gets. */
  nextPosition: tf.Tensor2D | undefined;

  constructor(numLayers: number) {
    this.layers = new Array<LayerKV | undefined>(numLayers).fill(undefined);
  }

  /** Number of cached keys of a layer (0 when empty). */
  length(layer = 0): number {
    return this.layers[layer]?.keys.shape[2] ?? 0;
  }

  /** Batch size of the cached rows, or undefined when empty. */
  get batch(): number | undefined {
    return this.nextPosition?.shape[0];
  }

  /** Replaces a layer's entry with tensors the cache now owns (the caller must have kept them out of any tidy). */
  setLayer(layer: number, kv: LayerKV): void {
    const old = this.layers[layer];
    this.layers[layer] = kv;
    if (old) tf.dispose([old.keys, old.values, old.keyMask]);
  }

  setNextPosition(t: tf.Tensor2D): void {
    this.nextPosition?.dispose();
    this.nextPosition = t;
  }

  dispose(): void {
    for (let l = 0; l < this.layers.length; l++) {
      const kv = this.layers[l];
      if (kv) tf.dispose([kv.keys, kv.values, kv.keyMask]);
      this.layers[l] = undefined;
    }
    this.nextPosition?.dispose();
    this.nextPosition = undefined;
  }
}
