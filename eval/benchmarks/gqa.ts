// GQA testdev-balanced (lmms-lab/GQA, lmms-eval task gqa): instructions joined on imageId with the images dataset;
// `{question}\nAnswer the question using a single word or phrase.`, 16 new tokens, lmms-eval exact match
// (lower case, punctuation removed) against `answer`.
import { scoreGqa } from "./metric_calls.js";
import { BenchmarkDataError, idCol, meanOf, stringCol, SHORT_ANSWER_POST_PROMPT, type Benchmark } from "./types.js";

export const gqa: Benchmark = {
  name: "gqa",
  describe: "GQA testdev balanced (lmms-lab/GQA instructions + images): exact match",
  columns: ["id", "imageId", "question", "answer"],
  maxNewTokens: 16,
  primary: "accuracy",
  needsImages: true,
  toItem(row, at) {
    const imageId = idCol(row, "imageId", at);
    const image = at.image?.(imageId);
    if (!image) throw new BenchmarkDataError(at, `missing image: imageId "${imageId}" is not in the images dataset`, "imageId");
    const answer = stringCol(row, "answer", at);
    return { id: idCol(row, "id", at), prompt: stringCol(row, "question", at) + SHORT_ANSWER_POST_PROMPT, image, target: answer, meta: {} };
  },
  score: (prediction, item) => ({ correct: scoreGqa(prediction, item.target as string) }),
  aggregate: (scores) => ({ accuracy: 100 * meanOf(scores, "correct") }),
};
