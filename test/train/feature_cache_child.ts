// Child process for the feature-cache crash test (run with VZT_FEATURE_CACHE_CHILD=1): writes shards of
// deterministic entries until it is killed. argv: <root> <key JSON>.
// Entry i: sha = sha256("img-<i>"), tokens [CHILD_T, CHILD_C] with tokens[j] = i + j / 1024.
import { openFeatureCache } from "../../train/feature_cache.js";
import { imageSha256, type FeatureKey } from "../../train/feature_key.js";

export const CHILD_T = 256;
export const CHILD_C = 64;
const PER_SHARD = 128; // 8 MiB of tokens per shard

export function childEntry(i: number): { sha: string; tokens: Float32Array; shape: [number, number] } {
  const tokens = new Float32Array(CHILD_T * CHILD_C);
  for (let j = 0; j < tokens.length; j++) tokens[j] = i + j / 1024;
  return { sha: imageSha256(new TextEncoder().encode(`img-${i}`)), tokens, shape: [CHILD_T, CHILD_C] };
}

async function main(): Promise<void> {
  const [root, keyJson] = process.argv.slice(2);
  const cache = await openFeatureCache(root!, JSON.parse(keyJson!) as FeatureKey, { flushEntries: 1 << 30 });
  for (let s = 0; ; s++) {
    await cache.put(Array.from({ length: PER_SHARD }, (_, k) => childEntry(s * PER_SHARD + k)));
    await cache.flush();
  }
}

if (process.env.VZT_FEATURE_CACHE_CHILD === "1") void main();
