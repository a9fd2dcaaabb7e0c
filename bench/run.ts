// `npm run bench [-- --quick] [flags]`: every figure of issue 7 in one process on the selected backend. Progress
// lines go to stderr; the markdown table to stdout; the results to <out>/<YYYY-MM-DD>-<backend>.json.
// Flags: bench/args.ts (USAGE). A figure that throws is reported (its ratios become null) and the others still run.
import { mkdir, writeFile } from "node:fs/promises";
import path from "node:path";
import { pathToFileURL } from "node:url";
import { setBackend, tf } from "../core/backend.js";
import { installWasmThreads } from "../core/wasm_threads.js";
import { parseBenchArgs, type BenchSettings, type FigureName } from "./args.js";
import { createContext, type BenchContext } from "./context.js";
import { cacheFigure } from "./figures/feature_cache.js";
import { dataFigure } from "./figures/data_pipeline.js";
import { growthFigure } from "./figures/tensor_growth.js";
import { memoryFigure } from "./figures/memory.js";
import { peakFigure } from "./figures/peak.js";
import { prefillFigure } from "./figures/prefill.js";
import { trainFigure } from "./figures/train_step.js";
import { visionFigure } from "./figures/vision.js";
import { machineInfo } from "./machine.js";
import { buildResults, describeMachine, markdownTable, resultsFileName, type BenchResults, type FigureResult } from "./results.js";

const RUNNERS: Record<FigureName, (ctx: BenchContext) => Promise<FigureResult>> = {
  peak: peakFigure,
  vision: visionFigure,
  prefill: prefillFigure,
  train: trainFigure,
  cache: cacheFigure,
  data: dataFigure,
  memory: memoryFigure,
  growth: growthFigure,
};

/**
 * Run order: the batch-8 training step (figure 6) needs the most wasm heap, and a wasm abort ends the backend for
 * the rest of the process, so it goes last; the table keeps figure order.
 */
const EXEC_ORDER: readonly FigureName[] = ["peak", "vision", "prefill", "cache", "data", "memory", "growth", "train"];

export interface BenchRun {
  results: BenchResults;
  file: string;
  table: string;
}

/** Runs the selected figures and writes the results file. */
export async function runBench(settings: BenchSettings): Promise<BenchRun> {
  const start = new Date();
  const t0 = performance.now();
  if (settings.threads !== undefined && settings.backend === "wasm") installWasmThreads(settings.threads);
  const backend = await setBackend(settings.backend);
  const ctx = createContext(settings, t0);
  const machine = machineInfo();
  ctx.progress(describeMachine(machine));
  const figures: FigureResult[] = [];
  const errors: Record<string, string> = {};
  try {
    for (const name of EXEC_ORDER.filter((f) => settings.only.includes(f))) {
      const before = tf.memory().numTensors - ctx.modelTensors();
      try {
        figures.push(await RUNNERS[name](ctx));
      } catch (e) {
        errors[name] = (e as Error).stack ?? String(e);
        ctx.progress(`figure group ${name} failed: ${(e as Error).message}`);
      }
      // Shared models stay alive between figures; anything else a figure left behind is a leak worth knowing about.
      const left = tf.memory().numTensors - ctx.modelTensors() - before;
      if (left !== 0) ctx.progress(`note: figure group ${name} changed the tensor count by ${left}`);
    }
  } finally {
    ctx.dispose();
  }
  figures.sort((a, b) => settings.only.indexOf(a.group) - settings.only.indexOf(b.group));
  const seconds = (performance.now() - t0) / 1000;
  const { only, ...rest } = settings;
  const results = buildResults({ start, backend, machine, settings: { ...rest, only }, figures, errors, seconds });
  await mkdir(settings.out, { recursive: true });
  const file = path.join(settings.out, resultsFileName(results.date, backend));
  await writeFile(file, JSON.stringify(results, null, 2) + "\n");
  const table = markdownTable(figures.flatMap((f) => f.rows));
  return { results, file, table };
}

async function main(): Promise<void> {
  let settings: BenchSettings;
  try {
    settings = parseBenchArgs(process.argv.slice(2), process.env);
  } catch (e) {
    process.stderr.write((e as Error).message + "\n");
    process.exit(2);
  }
  const { results, file, table } = await runBench(settings);
  const lines = [
    `# visionzip-tune bench, ${results.date}${settings.quick ? " (--quick)" : ""}`,
    "",
    describeMachine(results.machine),
    `peak GEMM ${results.peak_gflops?.toFixed(1) ?? "n/a"} GFLOP/s; ${settings.repeats} paired rounds after ${settings.warmup} warm-up; vision ${settings.visionLayers} layer(s), decoder ${settings.llmLayers} layer(s); ${results.seconds.toFixed(0)} s`,
    "",
    table,
    "",
    results.failures.length ? `targets missed: ${results.failures.length}` : "all targets met",
    ...Object.entries(results.errors).map(([k, v]) => `figure group ${k} failed: ${v.split("\n")[0]}`),
    `results: ${file}`,
  ];
  process.stdout.write(lines.join("\n") + "\n");
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? "").href) {
  main().catch((e) => {
    process.stderr.write(((e as Error).stack ?? String(e)) + "\n");
    process.exit(1);
  });
}
