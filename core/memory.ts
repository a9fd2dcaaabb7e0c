// The one helper tests use to check that a piece of work leaves no tensors behind.
import { tf } from "./backend.js";

/** Runs fn and throws if tf.memory().numTensors changed. Returns fn's result. */
export async function assertNoTensorLeak<T>(what: string, fn: () => T | Promise<T>): Promise<T> {
  const before = tf.memory().numTensors;
  const out = await fn();
  const after = tf.memory().numTensors;
  if (after !== before) throw new Error(`${what}: tensor count changed from ${before} to ${after}`);
  return out;
}
