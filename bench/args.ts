// Command-line flags of `npm run bench [-- flags]` and the settings they resolve to (defaults differ with --quick).
import type { BackendName } from "../core/backend.js";
import { BACKENDS } from "../core/backend.js";

/** Figure groups, in the order they run (peak first: the others are compared with it). */
export const FIGURES = ["peak", "vision", "prefill", "train", "cache", "data", "memory", "growth"] as const;
export type FigureName = (typeof FIGURES)[number];

export interface BenchSettings {
  quick: boolean;
  backend: BackendName;
  /** CLIP ViT-L/14-336 encoder layers in the benchmarked stack (real model: 24; LLaVA runs 23). */
  visionLayers: number;
  /** Qwen2-0.5B-shaped decoder layers (real model: 24). */
  llmLayers: number;
  /** Timed (paired) repeats per figure, after warm-up. */
  repeats: number;
  /** Untimed runs before timing. */
  warmup: number;
  /** Folder for the results file. */
  out: string;
  /** wasm threads for this process (core/wasm_threads.ts); undefined: whatever setBackend gives. */
  threads?: number;
  /** Figure groups to run (default all). */
  only: FigureName[];
  /** Figure 8: bytes of generated Arrow shards to stream. */
  streamBytes: number;
  /** Figure 9: optimizer steps of the demo training child. */
  memorySteps: number;
  /** Figure 10: training steps before numTensors is compared with step 1's. */
  growthSteps: number;
  /** Figure 6: rows per optimizer step. */
  trainBatch: number;
  /** Figure 6: rows per micro-batch (gradients accumulated over trainBatch / trainMicro micro-batches). */
  trainMicro: number;
  /** Figure 6: paired rounds (its steps are the slowest work of the bench). */
  trainRepeats: number;
}

export const USAGE = `usage: npm run bench [-- flags]
  --quick              fewer repeats, smaller streams, shorter runs (about 2 minutes)
  --backend NAME       ${BACKENDS.filter((b) => b !== "auto").join(" | ")} | auto   (default: VZT_BACKEND, else wasm)
  --vision-layers N    CLIP ViT-L/14-336 layers in the stack (default 2; quick 1)
  --llm-layers N       Qwen2-0.5B-shaped decoder layers (default 1: a batch-8 training step at 616 tokens
                       is ~0.5 TFLOP per layer)
  --repeats N          paired timed repeats per figure (default 5; quick 3)
  --warmup N           untimed runs first (default 1)
  --threads N          wasm: run this process on N threads (core/wasm_threads.ts; default: what setBackend
                       gives, i.e. the project's default)
  --out DIR            results folder (default bench/results)
  --only a,b           figure groups: ${FIGURES.join(", ")}
  --stream-mb N        figure 8: MB of generated Arrow shards to stream (default 1000; quick 200)
  --growth-steps N     figure 10: training steps (default 100; quick 20)
  --memory-steps N     figure 9: demo training steps in the child (default 10; quick 3)
  --train-batch N      figure 6: rows per optimizer step (default 8; quick 4)
  --train-micro N      figure 6: rows per micro-batch, accumulated (default 2: micro-batches of 4 x 616
                       tokens overflow the wasm heap, 4 GiB at most)
  --train-repeats N    figure 6: paired rounds (default 3; quick 2)`;

/** Parses argv (without node and script). Throws Error with the usage on a bad flag. */
export function parseBenchArgs(argv: readonly string[], env: Record<string, string | undefined> = {}): BenchSettings {
  const flags = new Map<string, string>();
  let quick = false;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === "--quick") {
      quick = true;
      continue;
    }
    if (a === "--help" || a === "-h") throw new Error(USAGE);
    const eq = a.indexOf("=");
    const [name, inline] = a.startsWith("--") && eq > 0 ? [a.slice(0, eq), a.slice(eq + 1)] : [a, undefined];
    if (!KNOWN.has(name)) throw new Error(`bench: unknown flag "${a}"\n${USAGE}`);
    const value = inline ?? argv[++i];
    if (value === undefined || value.startsWith("--")) throw new Error(`bench: ${name} needs a value\n${USAGE}`);
    flags.set(name, value);
  }
  const int = (name: string, dflt: number, min = 1): number => {
    const v = flags.get(name);
    if (v === undefined) return dflt;
    const n = Number(v);
    if (!Number.isInteger(n) || n < min) throw new Error(`bench: ${name} must be an integer >= ${min}, got "${v}"`);
    return n;
  };
  const backend = (flags.get("--backend") ?? env.VZT_BACKEND ?? "wasm") as BackendName;
  if (!(BACKENDS as readonly string[]).includes(backend)) throw new Error(`bench: --backend "${backend}" is not one of ${BACKENDS.join(", ")}`);
  const trainBatch = int("--train-batch", quick ? 4 : 8);
  const trainMicro = Math.min(int("--train-micro", 2), trainBatch);
  if (trainBatch % trainMicro !== 0) throw new Error(`bench: --train-batch ${trainBatch} is not a multiple of --train-micro ${trainMicro}`);
  const only = (flags.get("--only")?.split(",").map((s) => s.trim()).filter(Boolean) ?? [...FIGURES]) as FigureName[];
  for (const f of only) if (!(FIGURES as readonly string[]).includes(f)) throw new Error(`bench: --only "${f}" is not one of ${FIGURES.join(", ")}`);
  return {
    quick,
    backend,
    visionLayers: int("--vision-layers", quick ? 1 : 2),
    llmLayers: int("--llm-layers", 1),
    repeats: int("--repeats", quick ? 3 : 5),
    warmup: int("--warmup", 1, 0),
    out: flags.get("--out") ?? "bench/results",
    ...(flags.has("--threads") ? { threads: int("--threads", 1) } : {}),
    only: FIGURES.filter((f) => only.includes(f)),
    streamBytes: int("--stream-mb", quick ? 200 : 1000) * 1e6,
    growthSteps: int("--growth-steps", quick ? 20 : 100, 2),
    memorySteps: int("--memory-steps", quick ? 3 : 10),
    trainBatch,
    trainMicro,
    trainRepeats: int("--train-repeats", quick ? 3 : 5),
  };
}

const KNOWN = new Set(["--backend", "--threads", "--vision-layers", "--llm-layers", "--repeats", "--warmup", "--out", "--only", "--stream-mb", "--growth-steps", "--memory-steps", "--train-batch", "--train-micro", "--train-repeats"]);
