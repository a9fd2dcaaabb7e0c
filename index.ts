// The package entry: the library API of visionzip-tune. The CLI (cli.ts) is a thin layer over these functions.

// Tensors and backends
export { tf, setBackend, resolveBackendName, describeBackend, BACKENDS, type BackendName } from "./core/backend.js";
export { installWasmThreads, wantedWasmThreads, wasmThreadsInUse, MAX_WASM_THREADS } from "./core/wasm_threads.js";
export { WeightsError, ConfigError, DataError, HubError } from "./core/errors.js";
export { createRng, rngFromState, type Rng, type RngState } from "./core/rng.js";

// Weights I/O and model sources
export { readSafetensors, writeSafetensors, readHeader as readSafetensorsHeader, encodeSafetensors, decodeSafetensors } from "./models/safetensors.js";
export { openTensorSource, classifyNames, loadComponent, type TensorSource, type WeightMap, type Component } from "./models/weights.js";
export { downloadModel, resolveModelDir, parseRepoId, MODEL_FILES, type DownloadOptions } from "./models/hub.js";
export { inspectModel, formatInspection, type Inspection } from "./models/inspect.js";

// Models
export {
  loadVisionTower, parseClipVisionConfig, readClipVisionConfig, clipVisionComponent, CLIP_VISION_WEIGHT_MAP,
  type VisionTower, type VisionOutput, type ClipVisionConfig,
} from "./models/clip_vision.js";
export {
  buildProjector, loadProjector, projectorTensors, projectorConfigJson, gelu,
  type Projector, type ProjectorSpec, type ProjectorType, type ProjectorNaming,
} from "./models/projector.js";
export { loadLanguageModel, createLanguageModel, type LanguageModel, type LanguageModelOptions, type ForwardInput, type ForwardOutput } from "./models/llama.js";
export { greedyGenerate, type GenerateOptions } from "./models/generate.js";
export { KVCache } from "./models/kv_cache.js";
export { readLlmConfig, parseLlmConfig, type LlmConfig } from "./models/llm_config.js";
export { llmComponent } from "./models/llama_weights.js";
export { makeTiny } from "./models/make_tiny.js";

// Token reduction
export { visionZip, type VisionZipInputs, type VisionZipOptions, type VisionZipResult } from "./reduce/visionzip.js";
export { REDUCERS, buildReducer, type Reducer, type ReduceResult, type ReduceFeatures } from "./reduce/reducer.js";
export { visionZipSplit, VISIONZIP_SPLITS } from "./reduce/budget.js";

// Data: tokenizer, prompts, images
export { loadTokenizer, loadTokenizerConfig, type Tokenizer } from "./data/tokenizer.js";
export {
  tokenizeConversation, toConversation, chatMessages, IMAGE_TOKEN_INDEX, IGNORE_INDEX, DEFAULT_IMAGE_TOKEN,
  type Conversation, type TokenizedConversation,
} from "./data/conversation.js";
export { buildPrompt, renderChatTemplate, VICUNA_V1_SYSTEM, type TemplateName } from "./data/prompt.js";
export { decodeImage, type RGBImage } from "./data/image.js";
export {
  preprocessImage, preprocessToFloat32, preprocessRGB, loadPreprocessorConfig, parsePreprocessorConfig,
  CLIP_VIT_L_336_PREPROCESSOR, type PreprocessOptions, type PixelValues, type PreprocessorConfig,
} from "./data/preprocess.js";

// Data: Arrow shards, records, batching, dataset tools
export { openShards, ShardSet, cursorAfter, type Cursor, type ShardRow, type RowWhere } from "./data/arrow_shards.js";
export { conversationRecords, vqaRecords, toConversationRecord, toVqaRecord, LLAVA_MAPPING, VQA_MAPPING, type ColumnMapping, type ConversationRecord, type VqaRecord } from "./data/records.js";
export { SkipReport, RowError } from "./data/skip_report.js";
export { writeDatasetFolder, writeDatasetDict, writeArrowFile } from "./data/write_shards.js";
export { createLoader, BatchLoader, shardSetSource, type LoaderBatch, type LoaderOptions } from "./data/loader.js";
export { llavaEncoder, vqaConversationEncoder } from "./data/sample_encoder.js";
export { collate, padTokenIdOf, type Batch, type Sample } from "./data/batch.js";
export { batchToTensors, disposeBatchTensors } from "./data/batch_tensors.js";
export { parseShardSpec, takeShard, epochPermutation, type SamplerCursor } from "./data/sampler.js";
export { prepare, formatPrepareSummary, parseByteSize, type PrepareOptions, type PrepareSummary } from "./data/prepare.js";
export { makeShapesData } from "./data/make_data.js";
export { generateShapes, SHAPES_VOCAB } from "./data/shapes.js";
export { imageSha256 } from "./data/image.js";

// The VLM: parts, splicing, forward and generation with a reducer passed as a value
export { loadVlm, vlmForward, vlmForwardFromVisual, vlmGenerate, encodeImages, reduceFeatures, projectVisual, encodeAndReduce, type Vlm, type VlmSources } from "./models/llava.js";
export { spliceImageTokens, planSplice } from "./models/splice.js";
export { visualizeReduction, visualizeCommand } from "./reduce/visualize.js";

// Configs and training
export { loadConfig, validateConfigFile, configFromObject } from "./configs/load.js";
export { configHash, diffConfigs, writeResolvedConfig } from "./configs/resolved.js";
export type { RunConfig } from "./configs/schema.js";
export { setup as setupTraining, cleanup as cleanupTraining, type Run } from "./train/setup.js";
export { train, runTraining, NonFiniteError, type TrainSummary, type TrainOptions, type PeriodicEval } from "./train/recipe.js";
export { accuracyEval, trainingEvalKey } from "./eval/training_eval.js";
export { openBenchmarkScorer, type BenchmarkScorer, type BenchmarkScore, type ScorerOptions } from "./eval/scorer.js";
export { maskedCrossEntropySum } from "./train/loss.js";
export { AdamW } from "./train/optimizer.js";
export { lrAt } from "./train/schedule.js";
export { saveCheckpoint, loadCheckpoint, resolveCheckpoint, listCheckpoints, type TrainState } from "./train/checkpoint.js";
export { exportProjector } from "./train/export.js";
export { openFeatureCache, computeOrLoadFeatures, FeatureCache } from "./train/feature_cache.js";
export { makeFeatureKey, weightsFingerprint } from "./train/feature_key.js";
export { EventFileWriter } from "./train/tensorboard.js";
export { JsonlLogger, TensorBoardLogger, StdoutLogger, multiLogger, type MetricLogger } from "./train/metric_logger.js";
export * from "./eval/metrics/index.js";

// Evaluation
export { runEval, type EvalSummary, type EvalOptions } from "./eval/recipe.js";
export { mergeShards } from "./eval/outputs.js";
export { compareResults } from "./eval/compare.js";
export { loadEvalConfig, evalConfigFromObject, type EvalConfig } from "./configs/eval_schema.js";
export { generateBatch } from "./eval/generate.js";
export { GRID_METHODS, parseGridCell } from "./eval/grid.js";
export { BENCHMARKS, getBenchmark } from "./eval/benchmarks/registry.js";
export { pretrainTiny, type PretrainOptions, type PretrainResult } from "./models/pretrain_tiny.js";

// Token reduction inside the LLM: FastV, TopV, keep schedules (G-Search / P-Sigmoid)
export { fastvReducer, fastvKeep, type FastVOptions } from "./reduce/fastv.js";
export { topvReducer, scheduleReducer, pSigmoidReducer, topKSorted, keepTopScored, type InLlmReducer, type InLlmReduction, type DecisionPoint, type DecisionInput, type ReductionTrace } from "./reduce/in_llm.js";
export { topvImportance, topvKeep, topvSelect, sinkhornLog, TOPV_DEFAULTS, type TopvOptions } from "./reduce/topv.js";
export { validateSchedule, readSchedule, writeSchedule, scheduleFlops, flopsEquivalentTokens, type KeepSchedule, type FlopsDims } from "./reduce/schedule.js";
export { pSigmoidSchedule, solveL0, pSigmoidSearch } from "./reduce/psigmoid.js";
export { gSearch } from "./reduce/gsearch.js";
export { bayesOpt } from "./reduce/bayes_opt.js";
export { openSearchEvaluator, runGSearch, runPSigmoid, SearchInterrupted, type SearchEvaluator, type SearchScore } from "./eval/search.js";
export { evalPlots } from "./eval/plots.js";
export { sideBySide } from "./eval/side_by_side.js";
