// The package entry: the library API of visionzip-tune. The CLI (cli.ts) is a thin layer over these functions.

// Tensors and backends
export { tf, setBackend, resolveBackendName, BACKENDS, type BackendName } from "./core/backend.js";
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
export { loadLanguageModel, createLanguageModel, type LanguageModel, type ForwardInput, type ForwardOutput } from "./models/llama.js";
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
