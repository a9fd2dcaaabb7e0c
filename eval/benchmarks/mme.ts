// MME (lmms-lab/MME, lmms-eval task mme): the question stripped, " Please answer yes or no." removed (the default
// post-prompt is set), then `\nAnswer the question using a single word or phrase.`; 16 new tokens. Per category
// acc + acc+ (both questions of an image right); perception (10 categories, max 2000) and cognition (4, max 800).
// The total (perception + cognition) is the number the VisionZip paper reports.
import { mmeAggregate, mmeAnswerOf } from "./metric_calls.js";
import { BenchmarkDataError, idCol, imageCol, stringCol, SHORT_ANSWER_POST_PROMPT, type Benchmark } from "./types.js";

const YES_NO = " Please answer yes or no.";

export const mme: Benchmark = {
  name: "mme",
  describe: "MME (lmms-lab/MME): perception + cognition scores (acc + acc+ per category)",
  columns: ["question_id", "question", "answer", "category", "image"],
  maxNewTokens: 16,
  primary: "total",
  toItem(row, at) {
    const answer = stringCol(row, "answer", at);
    if (!/^(yes|no)$/i.test(answer.trim())) throw new BenchmarkDataError(at, `answer must be "Yes" or "No", got ${JSON.stringify(answer)}`, "answer");
    const question = stringCol(row, "question", at).trim().replace(YES_NO, "");
    const imageKey = idCol(row, "question_id", at); // lmms-lab/MME: the image file name, shared by its 2 questions
    return {
      id: imageKey,
      prompt: question + SHORT_ANSWER_POST_PROMPT,
      image: imageCol(row, "image", at),
      target: answer,
      meta: { category: stringCol(row, "category", at), imageKey },
    };
  },
  score(prediction, item) {
    const pred = mmeAnswerOf(prediction);
    const answer = item.target as string;
    return { pred, answer, correct: pred === answer.trim().toLowerCase().replaceAll(".", "") ? 1 : 0, category: item.meta.category ?? "", image: item.meta.imageKey ?? "" };
  },
  aggregate: (scores) =>
    mmeAggregate(scores.map((s) => ({ pred: String(s.pred), answer: String(s.answer), category: String(s.category), image: String(s.image) }))),
};
