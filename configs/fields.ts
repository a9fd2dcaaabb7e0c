// Field kinds shared by the training and eval schemas: model sources, Arrow shard specs, a worker's "i/N" part.
import { existsSync } from "node:fs";
import path from "node:path";
import { parseShardSpec } from "../data/sampler.js";
import { expandGlob, hasGlob } from "../data/shard_paths.js";
import { parseRepoId } from "../models/hub.js";
import { field, nullable, oneOrMany, INVALID } from "./dsl.js";
import { pathField } from "./path_field.js";

/**
 * A model folder, or a Hub id `org/name[@revision]` (resolved by models/hub.ts at setup, not checked here). A
 * missing `a/b` whose folder `a` exists locally is taken as a mistyped local path, not a Hub id.
 */
export const modelSource = (type: "folder" | "any", doc: string) =>
  nullable(
    pathField({
      mustExist: true,
      type,
      what: `a ${type === "folder" ? "folder" : "file or folder"} or Hub id org/name`,
      accept: (p, abs) => parseRepoId(p) !== undefined && !existsSync(path.dirname(abs)),
    }),
    { doc },
  );

/** Arrow shards: a file, a folder (save_to_disk or *.arrow), a glob that must match, or a list of these. */
export const shardSpec = (doc: string) => oneOrMany(pathField({ mustExist: true, accept: (p, abs) => hasGlob(p) && expandGlob(abs).length > 0 }), { doc });

export const workerShard = field<string>("\"i/N\" with 0 <= i < N", {}, (v, key, ctx) => {
  try {
    if (typeof v === "string") return (parseShardSpec(v), v);
  } catch (e) {
    ctx.report(key, (e as Error).message.replace(/^--shard /, "expected \"i/N\" with 0 <= i < N, got "));
    return INVALID;
  }
  ctx.report(key, `expected "i/N" with 0 <= i < N, got ${JSON.stringify(v)}`);
  return INVALID;
});

