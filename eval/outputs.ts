// Writes what an eval leaves behind from its meta and item records: results.json, report.md, the two SVG plots and
// (optionally) samples.jsonl; and mergeShards, which builds the same files from the logs of `--shard i/N` workers.
import { writeFileSync } from "node:fs";
import path from "node:path";
import { buildResults, type EvalMeta, type EvalResults } from "./aggregate.js";
import { evalPlots } from "./plots.js";
import { renderReport, REPORT_FILE } from "./report.js";
import { collectShards, RESULTS_FILE, sortRecords, writeJsonAtomic, type ItemRecord } from "./results.js";

export const SAMPLES_FILE = "samples.jsonl";

export interface EvalOutputs {
  results: EvalResults;
  /** Files written (absolute paths). */
  files: string[];
}

/** Builds results from the records and writes results.json, report.md, the plots and samples.jsonl into `outputDir`. */
export function writeEvalOutputs(outputDir: string, meta: EvalMeta, records: readonly ItemRecord[], opts: { samples?: boolean } = {}): EvalOutputs {
  const sorted = sortRecords(records, meta.grid.map((c) => c.key), meta.benchmarks.map((b) => b.name));
  const results = buildResults(meta, sorted);
  const files: string[] = [];
  const put = (name: string, text: string) => {
    const f = path.resolve(outputDir, name);
    writeFileSync(f, text);
    files.push(f);
  };
  writeJsonAtomic(path.resolve(outputDir, RESULTS_FILE), results);
  files.push(path.resolve(outputDir, RESULTS_FILE));
  const plots = evalPlots(results);
  for (const [name, svg] of Object.entries(plots)) put(name, svg);
  put(REPORT_FILE, renderReport(results, Object.keys(plots)));
  if (opts.samples ?? true) put(SAMPLES_FILE, sorted.map((r) => JSON.stringify(r)).join("\n") + (sorted.length ? "\n" : ""));
  return { results, files };
}

export interface MergeOptions {
  /** Where the merged outputs go; default the first folder given (or the output folder above a shard folder). */
  outputDir?: string;
  samples?: boolean;
}

/**
 * `vzt eval --merge DIR...`: unions the logs of every shard i/N found in DIRs (output folders holding shards/, or
 * shard folders), checks all N are present, finished and from one config, and writes the merged outputs.
 * @throws DataError naming a missing or unfinished shard or a conflicting item.
 */
export function mergeShards(dirs: readonly string[], opts: MergeOptions = {}): EvalOutputs {
  const { records, meta, shards } = collectShards(dirs);
  const first = shards[0]!.dir;
  const outputDir = opts.outputDir ?? (path.basename(path.dirname(first)) === "shards" ? path.dirname(path.dirname(first)) : dirs[0]!);
  return writeEvalOutputs(outputDir, meta as EvalMeta, records, { samples: opts.samples });
}
