// The official benchmark metrics, re-exported for the package entry: VQA (VQAv2 / TextVQA / GT-Vision-Lab), GQA,
// POPE, MME, ScienceQA. Each file names the official source and commit it follows.

export {
  normalizeVqaAnswer,
  processDigitArticle,
  processPunctuation,
  scoreVqaAnswer,
  vqaAccuracy,
  vqaDatasetAccuracy,
  wordTokenize,
} from "./vqa.js";
export type { VqaDatasetScore, VqaScore, VqaVariant } from "./vqa.js";
export { gqaAccuracy, gqaMatch, normalizeGqaPrediction } from "./gqa.js";
export type { GqaScore, GqaVariant } from "./gqa.js";
export { popeMetrics, popeMetricsByCategory, popeYesNo } from "./pope.js";
export type { PopeMetrics, PopeVariant } from "./pope.js";
export { MME_COGNITION_CATEGORIES, MME_PERCEPTION_CATEGORIES, mmeScores, parseMmeAnswer } from "./mme.js";
export type { MmeCategoryScore, MmeReference, MmeScores } from "./mme.js";
export { parseScienceqaChoice, scienceqaAccuracy, scienceqaCorrect, scienceqaLetter } from "./scienceqa.js";
export type { ScienceqaScore, ScienceqaVariant } from "./scienceqa.js";
