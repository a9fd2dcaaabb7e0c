// TextVQA val (lmms-lab/textvqa, lmms-eval task textvqa_val): `{question.capitalize()}\nAnswer the question using a
// single word or phrase.` (no OCR tokens), 16 new tokens; VQA accuracy with the full EvalAI answer processing.
import { scoreVqa } from "./metric_calls.js";
import { answersCol, idCol, imageCol, meanOf, stringCol, SHORT_ANSWER_POST_PROMPT, type Benchmark } from "./types.js";

/** Python's str.capitalize(): first character upper case, the rest lower case. */
export function pyCapitalize(s: string): string {
  return s.length ? s[0]!.toUpperCase() + s.slice(1).toLowerCase() : s;
}

export const textvqa: Benchmark = {
  name: "textvqa",
  describe: "TextVQA val (lmms-lab/textvqa): VQA accuracy (EvalAI processing), no OCR tokens",
  columns: ["question_id", "question", "answers", "image"],
  maxNewTokens: 16,
  primary: "accuracy",
  toItem(row, at) {
    return {
      id: idCol(row, "question_id", at),
      prompt: pyCapitalize(stringCol(row, "question", at)) + SHORT_ANSWER_POST_PROMPT,
      image: imageCol(row, "image", at),
      target: answersCol(row, "answers", at, 10),
      meta: {},
    };
  },
  score: (prediction, item) => ({ accuracy: scoreVqa(prediction, item.target as string[], "textvqa") }),
  aggregate: (scores) => ({ accuracy: 100 * meanOf(scores, "accuracy") }),
};
