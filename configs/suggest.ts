// Did-you-mean for config keys and enum values: Levenshtein distance, aliases (HF TrainingArguments spellings such
// as learning_rate -> lr) and the same key name in another section (train.lr -> optimizer.lr).

export interface KeyIndex {
  /** Every key path (objects and their leaves), depth first. */
  readonly paths: readonly string[];
  /** Lower-cased alias -> key path. */
  readonly aliases: ReadonlyMap<string, string>;
}

/** Levenshtein distance (case-insensitive). */
export function editDistance(a: string, b: string): number {
  const s = a.toLowerCase();
  const t = b.toLowerCase();
  let prev = Array.from({ length: t.length + 1 }, (_, j) => j);
  for (let i = 1; i <= s.length; i++) {
    const cur = [i];
    for (let j = 1; j <= t.length; j++) {
      cur.push(Math.min(prev[j]! + 1, cur[j - 1]! + 1, prev[j - 1]! + (s[i - 1] === t[j - 1] ? 0 : 1)));
    }
    prev = cur;
  }
  return prev[t.length]!;
}

/** The candidate nearest to `name`, if close enough to be a likely typo. */
export function nearest(name: string, candidates: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestD = Infinity;
  for (const c of candidates) {
    const d = editDistance(name, c);
    if (d < bestD) [best, bestD] = [c, d];
  }
  return bestD <= Math.max(2, Math.floor(name.length / 3)) ? best : undefined;
}

/** "unknown key" with the nearest valid key path: a sibling alias, a close sibling, or the same name elsewhere. */
export function unknownKeyMessage(
  parent: string,
  name: string,
  fields: Readonly<Record<string, { readonly aliases?: readonly string[] }>>,
  keys: KeyIndex,
): string {
  const joinKey = (p: string, k: string) => (p ? `${p}.${k}` : k);
  const lower = name.toLowerCase();
  const byAlias = Object.entries(fields).find(([, f]) => f.aliases?.some((a) => a.toLowerCase() === lower));
  const sibling = byAlias?.[0] ?? nearest(name, Object.keys(fields));
  const guess = sibling !== undefined ? joinKey(parent, sibling) : (keys.aliases.get(lower) ?? elsewhere(name, keys.paths));
  if (guess !== undefined) return `unknown key; did you mean "${guess}"?`;
  return `unknown key; valid keys${parent ? ` of ${parent}` : ""}: ${Object.keys(fields).join(", ")}`;
}

/** A key path elsewhere in the schema whose last part is (nearly) `name`, e.g. train.lr -> optimizer.lr. */
function elsewhere(name: string, allKeys: readonly string[]): string | undefined {
  const leaf = (k: string) => k.slice(k.lastIndexOf(".") + 1);
  const exact = allKeys.find((k) => leaf(k).toLowerCase() === name.toLowerCase());
  if (exact) return exact;
  const near = nearest(name, allKeys.map(leaf));
  return near === undefined ? undefined : allKeys.find((k) => leaf(k) === near);
}
