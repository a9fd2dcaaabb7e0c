// What every figure gets: the settings, a progress line writer (stderr), the peak rate once figure 1 measured it,
// and the shared random-weight models (built on first use, freed at the end).
import { tf } from "../core/backend.js";
import type { VisionTower } from "../models/clip_vision.js";
import type { LanguageModel } from "../models/llama.js";
import type { BenchSettings } from "./args.js";
import { clipLargeConfig, qwen2BenchConfig, randomLanguageModel, randomVisionTower } from "./models.js";

export interface BenchContext {
  settings: BenchSettings;
  /** A progress line on stderr. */
  progress(line: string): void;
  /** GFLOP/s of figure 1 (undefined until it ran or when it was left out). */
  peakGflops?: number;
  /** CLIP ViT-L/14-336 stack, settings.visionLayers deep. */
  tower(): VisionTower;
  /** Qwen2-0.5B-shaped decoder, settings.llmLayers deep. */
  decoder(): LanguageModel;
  /** Tensors the shared models hold (they stay alive between figures). */
  modelTensors(): number;
  dispose(): void;
}

export function createContext(settings: BenchSettings, t0 = performance.now()): BenchContext {
  let tower: VisionTower | undefined;
  let decoder: LanguageModel | undefined;
  let held = 0;
  const counted = <T>(build: () => T): T => {
    const before = tf.memory().numTensors;
    const m = build();
    held += tf.memory().numTensors - before;
    return m;
  };
  return {
    settings,
    progress(line) {
      process.stderr.write(`[bench ${((performance.now() - t0) / 1000).toFixed(0)}s] ${line}\n`);
    },
    tower: () => (tower ??= counted(() => randomVisionTower(clipLargeConfig(settings.visionLayers)))),
    decoder: () => (decoder ??= counted(() => randomLanguageModel(qwen2BenchConfig(settings.llmLayers)))),
    modelTensors: () => held,
    dispose() {
      tower?.dispose();
      decoder?.dispose();
      tower = decoder = undefined;
      held = 0;
    },
  };
}
