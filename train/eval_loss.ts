// Held-out loss during training: the eval split in a fixed order, no gradients. Conversation rows are used as they
// are; VQA-style rows (question, answers) become one-turn conversations answered by the majority answer.
import { tf } from "../core/backend.js";
import { padTokenIdOf } from "../data/batch.js";
import { createLoader, shardSetSource } from "../data/loader.js";
import { llavaEncoder, vqaConversationEncoder } from "../data/sample_encoder.js";
import { vlmForwardFromVisual } from "../models/llava.js";
import { maskedCrossEntropySum } from "./loss.js";
import type { Run } from "./setup.js";
import { textBatchOf } from "./step.js";
import { visualTokens } from "./visual_tokens.js";

/** Mean token loss over `train.eval_batches` micro-batches of data.eval (all of it when null). */
export async function heldOutLoss(run: Run): Promise<number> {
  const data = run.evalData!;
  const names = new Set(data.schema.columns.map((c) => c.name));
  const conv = run.cfg.data.columns.conversations ?? "conversations";
  const encode = names.has(conv)
    ? llavaEncoder(run.encoderOptions)
    : vqaConversationEncoder({
        ...run.encoderOptions,
        mapping: {
          id: names.has("question_id") ? "question_id" : undefined,
          image: run.cfg.data.columns.image ?? undefined,
          question: run.cfg.data.columns.question ?? "question",
          answers: run.cfg.data.columns.answers ?? "answers",
        },
      });
  const loader = createLoader({
    source: shardSetSource(data),
    encode,
    batchSize: run.cfg.train.micro_batch_size,
    collate: { padId: padTokenIdOf(run.vlm.tokenizer!) },
    epochs: 1,
    shuffle: "none",
    prefetch: run.cfg.data.prefetch,
    onError: run.cfg.data.on_error,
  });
  let sum = 0;
  let count = 0;
  let batches = 0;
  try {
    for await (const b of loader) {
      const visual = await visualTokens(run, b);
      try {
        const s = tf.tidy(() => {
          const out = vlmForwardFromVisual(run.vlm, visual, textBatchOf(b));
          const r = maskedCrossEntropySum(out.logits, tf.tensor2d(out.labels!, undefined, "int32"));
          count += r.count;
          return r.sum;
        });
        sum += (await s.data())[0]!;
        s.dispose();
      } finally {
        visual?.dispose();
      }
      if (++batches === run.cfg.train.eval_batches) break;
    }
  } finally {
    await loader.close();
  }
  return count > 0 ? sum / count : NaN;
}
