// Shard specs -> ordered lists of Arrow files: plain files, glob patterns (`*`, `?`, `**`, `{a,b}`, `[..]`),
// HF save_to_disk folders (Dataset or DatasetDict split), folders of *.arrow files, and lists of any of these.
import { readdirSync, statSync } from "node:fs";
import path from "node:path";
import { DataError } from "../core/errors.js";
import type { HfFeatures } from "./hf_datasets.js";
import { isDatasetDict, isDatasetFolder, readHfFolder } from "./hf_datasets.js";

export const ARROW_EXTENSIONS = [".arrow", ".feather", ".ipc", ".arrows"];

export interface ResolvedShards {
  files: string[];
  /** HF features from dataset_info.json, when every input was one HF folder. */
  features?: HfFeatures;
  /** Row count from dataset_info.json splits, when known. */
  numRows?: number;
}

export async function resolveShardSpec(spec: string | string[], opts: { split?: string } = {}): Promise<ResolvedShards> {
  const specs = Array.isArray(spec) ? spec : [spec];
  if (specs.length === 0) throw new DataError("no shards given (empty list)");
  const files: string[] = [];
  let features: HfFeatures | undefined;
  let numRows: number | undefined;
  for (const s of specs) {
    if (hasGlob(s)) {
      const matches = expandGlob(s).filter(isArrowName);
      if (matches.length === 0) throw new DataError(`no Arrow files (${ARROW_EXTENSIONS.join(", ")}) match the pattern`, { file: s });
      files.push(...matches);
    } else if (isDatasetFolder(s) || isDatasetDict(s)) {
      const f = await readHfFolder(s, opts.split);
      files.push(...f.files);
      if (specs.length === 1) ({ features, numRows } = f);
    } else {
      let st;
      try {
        st = statSync(s);
      } catch {
        throw new DataError("no such shard file or folder", { file: s });
      }
      if (st.isDirectory()) {
        const inDir = readdirSync(s).filter(isArrowName).sort().map((n) => path.join(s, n));
        if (inDir.length === 0) throw new DataError("folder holds no Arrow files and is not a save_to_disk folder", { file: s });
        files.push(...inDir);
      } else {
        files.push(s);
      }
    }
  }
  return { files: files.map((f) => path.resolve(f)), features, numRows };
}

export function isArrowName(p: string): boolean {
  return ARROW_EXTENSIONS.includes(path.extname(p).toLowerCase());
}

export function hasGlob(p: string): boolean {
  return /[*?[{]/.test(p);
}

/** Files matching a glob pattern, sorted. `**` crosses folders; symlinked files are followed, symlinked folders not. */
export function expandGlob(pattern: string): string[] {
  const norm = pattern.split(path.sep).join("/");
  const parts = norm.split("/");
  const firstGlob = parts.findIndex(hasGlob);
  const base = parts.slice(0, firstGlob).join("/") || (norm.startsWith("/") ? "/" : ".");
  const rest = parts.slice(firstGlob);
  const maxDepth = rest.includes("**") || rest.some((p) => p.includes("**")) ? Infinity : rest.length;
  const re = globToRegExp(rest.join("/"));
  const out: string[] = [];
  walk(base, "", 1, maxDepth, re, out);
  return out.sort().map((rel) => path.join(base, rel));
}

function walk(dir: string, rel: string, depth: number, maxDepth: number, re: RegExp, out: string[]): void {
  let entries;
  try {
    entries = readdirSync(dir, { withFileTypes: true });
  } catch {
    return;
  }
  for (const e of entries) {
    const relPath = rel ? `${rel}/${e.name}` : e.name;
    const full = path.join(dir, e.name);
    let isDir = e.isDirectory();
    let isFile = e.isFile();
    if (e.isSymbolicLink()) {
      try {
        isFile = statSync(full).isFile();
      } catch {
        isFile = false;
      }
      isDir = false;
    }
    if (isFile && re.test(relPath)) out.push(relPath);
    else if (isDir && depth < maxDepth) walk(full, relPath, depth + 1, maxDepth, re, out);
  }
}

/** Glob -> anchored RegExp over "/"-separated relative paths. */
export function globToRegExp(glob: string): RegExp {
  let re = "";
  for (let i = 0; i < glob.length; i++) {
    const c = glob[i]!;
    if (c === "*") {
      if (glob[i + 1] === "*") {
        const slash = glob[i + 2] === "/";
        re += slash ? "(?:.*/)?" : ".*";
        i += slash ? 2 : 1;
      } else re += "[^/]*";
    } else if (c === "?") re += "[^/]";
    else if (c === "{") {
      const end = glob.indexOf("}", i);
      if (end < 0) re += "\\{";
      else {
        re += "(?:" + glob.slice(i + 1, end).split(",").map(escapeRe).join("|") + ")";
        i = end;
      }
    } else if (c === "[") {
      const end = glob.indexOf("]", i + 1);
      if (end < 0) re += "\\[";
      else {
        re += "[" + glob.slice(i + 1, end).replace(/^!/, "^").replace(/\\/g, "\\\\") + "]";
        i = end;
      }
    } else re += escapeRe(c);
  }
  return new RegExp(`^${re}$`);
}

function escapeRe(s: string): string {
  return s.replace(/[.+^${}()|[\]\\*?]/g, "\\$&");
}
