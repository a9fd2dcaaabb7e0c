// POPE (lmms-lab/POPE, lmms-eval task pope): `{question.strip()}\nAnswer the question using a single word or phrase.`,
// 128 new tokens; predictions mapped to yes/no as LLaVA's eval_pope.py does; accuracy, precision, recall, F1 and
// yes-ratio (over all categories), F1 per category. F1 is the reported number.
import { popeAggregate, popeAnswerOf } from "./metric_calls.js";
import { BenchmarkDataError, idCol, imageCol, stringCol, SHORT_ANSWER_POST_PROMPT, type Benchmark } from "./types.js";

/** A POPE-style benchmark (also the shapes eval_pope split). */
export function popeBenchmark(name: string, describe: string): Benchmark {
  return {
    name,
    describe,
    columns: ["question_id", "question", "answer", "image", "category"],
    maxNewTokens: 128,
    primary: "f1",
    toItem(row, at) {
      const label = stringCol(row, "answer", at).trim().toLowerCase();
      if (label !== "yes" && label !== "no") throw new BenchmarkDataError(at, `answer must be "yes" or "no", got ${JSON.stringify(label)}`, "answer");
      return {
        id: idCol(row, "question_id", at),
        prompt: stringCol(row, "question", at).trim() + SHORT_ANSWER_POST_PROMPT,
        image: imageCol(row, "image", at),
        target: label,
        meta: { category: stringCol(row, "category", at) },
      };
    },
    score(prediction, item) {
      const pred = popeAnswerOf(prediction);
      return { pred, label: item.target as string, category: item.meta.category ?? "", correct: pred === item.target ? 1 : 0 };
    },
    aggregate: (scores) => popeAggregate(scores.map((s) => ({ pred: String(s.pred), label: String(s.label), category: String(s.category) }))),
  };
}

export const pope: Benchmark = popeBenchmark("pope", "POPE (lmms-lab/POPE, random/popular/adversarial): F1 with LLaVA's yes/no mapping");
