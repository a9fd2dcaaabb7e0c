// ScienceQA-IMG (lmms-lab/ScienceQA config ScienceQA-IMG, lmms-eval task scienceqa_img):
// `{Context: hint\n}{question}\nA. c0\nB. c1...\nAnswer with the option's letter from the given choices directly.`,
// 16 new tokens; correct when the prediction is the letter chr(65 + answer) (or starts "X.").
import { sqaCorrect } from "./metric_calls.js";
import { BenchmarkDataError, imageCol, meanOf, stringCol, type Benchmark } from "./types.js";

export const SQA_POST_PROMPT = "Answer with the option's letter from the given choices directly.";

export const scienceqa: Benchmark = {
  name: "scienceqa",
  describe: "ScienceQA-IMG (lmms-lab/ScienceQA): option-letter accuracy",
  columns: ["question", "choices", "answer", "hint", "image"],
  maxNewTokens: 16,
  primary: "accuracy",
  toItem(row, at) {
    const choices = row.choices;
    if (!Array.isArray(choices) || choices.length === 0 || !choices.every((c) => typeof c === "string")) {
      throw new BenchmarkDataError(at, `column "choices" must be a non-empty list of strings`, "choices");
    }
    const answer = row.answer;
    if (typeof answer !== "number" || !Number.isInteger(answer) || answer < 0 || answer >= choices.length) {
      throw new BenchmarkDataError(at, `answer must be an index into the ${choices.length} choices, got ${JSON.stringify(answer)}`, "answer");
    }
    const hint = typeof row.hint === "string" ? row.hint : "";
    const context = hint.trim() !== "" ? `Context: ${hint}\n` : "";
    const options = (choices as string[]).map((c, i) => `${String.fromCharCode(65 + i)}. ${c}`).join("\n");
    return {
      id: `${at.where.shard}:${at.where.row}`,
      prompt: `${context}${stringCol(row, "question", at)}\n${options}\n${SQA_POST_PROMPT}`,
      image: imageCol(row, "image", at),
      target: String.fromCharCode(65 + answer),
      meta: {},
    };
  },
  score: (prediction, item) => ({ correct: sqaCorrect(prediction, item.target as string) }),
  aggregate: (scores) => ({ accuracy: 100 * meanOf(scores, "correct") }),
};
