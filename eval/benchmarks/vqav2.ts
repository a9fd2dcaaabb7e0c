// VQAv2 (lmms-lab/VQAv2, lmms-eval task vqav2_val): `{question}\nAnswer the question using a single word or phrase.`,
// 16 new tokens, accuracy = the VQA leave-one-out accuracy over the 10 annotator answers (lmms-eval's normalisation).
import { scoreVqa } from "./metric_calls.js";
import { answersCol, idCol, imageCol, meanOf, stringCol, SHORT_ANSWER_POST_PROMPT, type Benchmark } from "./types.js";

/** A VQAv2-style benchmark (also the shapes eval_vqav2 split). */
export function vqaBenchmark(name: string, describe: string): Benchmark {
  return {
    name,
    describe,
    columns: ["question_id", "question", "answers", "image"],
    maxNewTokens: 16,
    primary: "accuracy",
    toItem(row, at) {
      return {
        id: idCol(row, "question_id", at),
        prompt: stringCol(row, "question", at) + SHORT_ANSWER_POST_PROMPT,
        image: imageCol(row, "image", at),
        target: answersCol(row, "answers", at, 10),
        meta: {},
      };
    },
    score: (prediction, item) => ({ accuracy: scoreVqa(prediction, item.target as string[], "vqav2") }),
    aggregate: (scores) => ({ accuracy: 100 * meanOf(scores, "accuracy") }),
  };
}

export const vqav2: Benchmark = vqaBenchmark("vqav2", "VQAv2 val (lmms-lab/VQAv2): VQA accuracy over 10 answers");
