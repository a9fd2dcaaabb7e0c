// Model sources: a local folder, or a Hugging Face Hub repo id (optionally @revision) fetched into the HF cache.
import { stat } from "node:fs/promises";
import { HubError } from "../core/errors.js";

/** Resolves a model source to a local folder. (Hub download: see resolveModelSource in a later change.) */
export async function resolveModelDir(source: string): Promise<string> {
  const s = await stat(source).catch(() => undefined);
  if (s?.isDirectory()) return source;
  throw new HubError(`${source}: not a local folder, and Hub download is not wired yet`);
}
