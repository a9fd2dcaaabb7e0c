// Model sources: a local folder, or a Hugging Face Hub repo id (`org/name[@revision]`) fetched into the standard HF
// cache (only config, tokenizer/processor files and safetensors weights; never pickles). Offline mode and
// already-complete snapshots resolve from the cache without network.
import { mkdir, readFile, readdir, rename, stat } from "node:fs/promises";
import { homedir } from "node:os";
import path from "node:path";
import { HubError } from "../core/errors.js";
import { formatBytes, info, Progress } from "../core/log.js";
import {
  blobPath,
  blobSize,
  hubCacheDir,
  isFile,
  isMarkedMissing,
  linkIntoSnapshot,
  markMissing,
  readRef,
  repoFolder,
  snapshotDir,
  writeRef,
} from "./hub_cache.js";
import { downloadToFile, fetchRevisionInfo, resolveUrl, scrubToken, type HubHttp, type HubSibling } from "./hub_http.js";

export interface DownloadOptions {
  /** Branch, tag or 40-hex commit sha (default: the `@revision` of the repo id, else "main"). */
  revision?: string;
  /** Cache root (default: HF_HUB_CACHE, else $HF_HOME/hub, else ~/.cache/huggingface/hub). */
  cacheDir?: string;
  /** Hub endpoint (default: HF_ENDPOINT, else https://huggingface.co). */
  hubUrl?: string;
  /** Exactly these repo files instead of the default selection. */
  files?: string[];
  /** Resolve from the cache only (default: HF_HUB_OFFLINE). */
  offline?: boolean;
  /** Log and draw a byte progress bar on stderr (default true). */
  progress?: boolean;
  /** Access token (default: HF_TOKEN, else HUGGING_FACE_HUB_TOKEN, else the `huggingface-cli login` token file). */
  accessToken?: string;
  /** Attempts per request, first try included (default 5). */
  attempts?: number;
  /** Backoff base in ms: retry n waits retryDelayMs * 2^(n-1) (default 1000). */
  retryDelayMs?: number;
}

/** The files a model needs besides its weights (each fetched when the repo has it). */
export const MODEL_FILES: readonly string[] = [
  "config.json",
  "generation_config.json",
  "tokenizer.json",
  "tokenizer_config.json",
  "tokenizer.model",
  "special_tokens_map.json",
  "added_tokens.json",
  "vocab.json",
  "merges.txt",
  "preprocessor_config.json",
  "processor_config.json",
  "chat_template.json",
  "chat_template.jinja",
];
const INDEX = "model.safetensors.index.json";
const SINGLE = "model.safetensors";
const PICKLE = /\.(bin|pt|pth|ckpt|pkl)$/i;
const WEIGHTS_HINT = `${SINGLE} (or ${INDEX} and its shards)`;
const CONCURRENCY = 4;

// ---- sources ------------------------------------------------------------------------------------------------

const NAME_PART = /^(?!.*(?:--|\.\.))[A-Za-z0-9][A-Za-z0-9._-]{0,95}$/;

/** Parses `org/name[@revision]`; undefined when `text` is not a repo id. */
export function parseRepoId(text: string): { repo: string; revision?: string } | undefined {
  const at = text.indexOf("@");
  const repo = at < 0 ? text : text.slice(0, at);
  const revision = at < 0 ? undefined : text.slice(at + 1);
  const parts = repo.split("/");
  if (parts.length !== 2 || !parts.every((p) => NAME_PART.test(p))) return undefined;
  if (revision !== undefined && (revision === "" || /\s|\.\./.test(revision))) return undefined;
  return revision === undefined ? { repo } : { repo, revision };
}

function expandHome(p: string): string {
  return p === "~" || p.startsWith("~/") ? path.join(homedir(), p.slice(1)) : p;
}

function looksLikePath(s: string): boolean {
  return /^(?:\.{1,2}|~)(?:[/\\]|$)/.test(s) || s.startsWith("/") || s.includes("\\") || /^[A-Za-z]:/.test(s) || s.endsWith("/");
}

/**
 * A model source to a local folder: an existing path is returned as is (`~` expanded); `org/name[@revision]`
 * that is not a local path is downloaded into (or resolved from) the HF cache and its snapshot folder returned.
 */
export async function resolveModelDir(source: string, opts: DownloadOptions = {}): Promise<string> {
  const local = expandHome(source);
  const s = await stat(local).catch(() => undefined);
  if (s) {
    if (s.isDirectory()) return local;
    throw new HubError(`${source}: is a file, not a model folder`);
  }
  if (looksLikePath(source)) throw new HubError(`${source}: no such folder`);
  if (!parseRepoId(source)) {
    throw new HubError(`${source}: no such folder, and not a Hub repo id (org/name or org/name@revision)`);
  }
  return downloadModel(source, opts);
}

// ---- settings -----------------------------------------------------------------------------------------------

function envTrue(v: string | undefined): boolean {
  return ["1", "true", "yes", "on"].includes((v ?? "").trim().toLowerCase());
}

async function findToken(opts: DownloadOptions): Promise<string | undefined> {
  const fromEnv = opts.accessToken ?? process.env.HF_TOKEN ?? process.env.HUGGING_FACE_HUB_TOKEN;
  if (fromEnv !== undefined) return fromEnv.trim() || undefined;
  const home = process.env.HF_HOME ?? path.join(process.env.XDG_CACHE_HOME ?? path.join(homedir(), ".cache"), "huggingface");
  const file = process.env.HF_TOKEN_PATH ?? path.join(home, "token");
  return (await readFile(file, "utf8").catch(() => "")).trim() || undefined;
}

// ---- snapshots ----------------------------------------------------------------------------------------------

/** Shard file names listed by a `model.safetensors.index.json`. */
async function indexShards(indexPath: string): Promise<string[]> {
  let index: { weight_map?: unknown };
  try {
    index = JSON.parse(await readFile(indexPath, "utf8")) as typeof index;
  } catch (e) {
    throw new HubError(`${indexPath}: not valid JSON (${(e as Error).message})`);
  }
  const map = index.weight_map;
  if (!map || typeof map !== "object") throw new HubError(`${indexPath}: missing "weight_map"`);
  const shards = [...new Set(Object.values(map as Record<string, unknown>))];
  const bad = shards.find((f) => typeof f !== "string" || !safeRelative(f));
  if (bad !== undefined) throw new HubError(`${indexPath}: bad shard name ${JSON.stringify(bad)} in "weight_map"`);
  return shards as string[];
}

function safeRelative(f: string): boolean {
  return f !== "" && !f.startsWith("/") && !f.includes("\\") && !f.split("/").some((p) => p === ".." || p === "." || p === "");
}

/**
 * What a cached snapshot lacks: `missing` are files needed to load the model (or the requested `files`);
 * `undecided` are optional files neither present nor recorded as absent from the repo.
 */
async function checkSnapshot(folder: string, commit: string, files?: string[]): Promise<{ missing: string[]; undecided: string[] }> {
  const snap = snapshotDir(folder, commit);
  const has = (f: string) => isFile(path.join(snap, f));
  const absent = (f: string) => isMarkedMissing(folder, commit, f);
  const missing: string[] = [];
  const undecided: string[] = [];
  if (files) {
    for (const f of files) if (!(await has(f))) missing.push(f);
    return { missing, undecided };
  }
  if (!(await has("config.json")) && !(await absent("config.json"))) missing.push("config.json");
  if (await has(INDEX)) {
    for (const shard of await indexShards(path.join(snap, INDEX))) if (!(await has(shard))) missing.push(shard);
  } else {
    const entries = await readdir(snap).catch(() => [] as string[]);
    const anyWeights = entries.some((f) => f.endsWith(".safetensors"));
    if (anyWeights) {
      if (!(await absent(INDEX))) undecided.push(INDEX);
    } else if (!((await absent(INDEX)) && (await absent(SINGLE)))) {
      missing.push(WEIGHTS_HINT);
    }
  }
  for (const f of MODEL_FILES) if (f !== "config.json" && !(await has(f)) && !(await absent(f))) undecided.push(f);
  return { missing, undecided };
}

// ---- download -----------------------------------------------------------------------------------------------

interface Fetcher {
  http: HubHttp;
  repo: string;
  revision: string;
  commit: string;
  folder: string;
  byName: Map<string, HubSibling>;
  progress: boolean;
}

function etagOf(s: HubSibling, f: Fetcher): { etag: string; size?: number; sha256?: string; gitOid?: string } {
  const sha256 = s.lfs?.sha256 ?? s.lfs?.oid;
  const etag = sha256 ?? s.blobId;
  if (!etag || !/^[0-9a-f]{40,64}$/.test(etag)) {
    throw new HubError(`${s.rfilename} of ${f.repo}@${f.revision}: the Hub listed no usable etag (lfs sha256 or blobId)`);
  }
  const size = s.lfs?.size ?? s.size;
  return sha256 ? { etag, size, sha256 } : { etag, size, gitOid: etag };
}

/** Fetches `names` into blobs/ and links them into the snapshot; files already there are skipped. */
async function fetchFiles(f: Fetcher, names: string[]): Promise<void> {
  const snap = snapshotDir(f.folder, f.commit);
  const groups = new Map<string, { files: string[]; want: ReturnType<typeof etagOf> }>();
  for (const name of names) {
    if (await isFile(path.join(snap, name))) continue;
    const want = etagOf(f.byName.get(name)!, f);
    const g = groups.get(want.etag) ?? { files: [], want };
    g.files.push(name);
    groups.set(want.etag, g);
  }
  const todo: { files: string[]; want: ReturnType<typeof etagOf> }[] = [];
  for (const g of groups.values()) {
    const have = await blobSize(blobPath(f.folder, g.want.etag));
    if (have !== undefined && (g.want.size === undefined || have === g.want.size)) {
      for (const name of g.files) await linkIntoSnapshot(f.folder, f.commit, name, g.want.etag);
    } else {
      todo.push(g);
    }
  }
  if (todo.length === 0) return;
  const total = todo.reduce((n, g) => n + (g.want.size ?? 0), 0);
  const bar = f.progress && total > 0 ? new Progress({ total, label: `download ${f.repo}`, bytes: true }) : undefined;
  if (f.progress) info(`${f.repo}@${f.revision}: downloading ${todo.length} file(s), ${formatBytes(total)}, into ${snap}`);
  let done = 0;
  const queue = [...todo].sort((a, b) => (b.want.size ?? 0) - (a.want.size ?? 0));
  const worker = async () => {
    for (let g = queue.shift(); g; g = queue.shift()) {
      const blob = blobPath(f.folder, g.want.etag);
      const part = blob + ".incomplete";
      const first = g.files[0]!;
      const url = resolveUrl(f.http, f.repo, f.commit, first);
      await downloadToFile(f.http, url, part, g.want, { repo: f.repo, revision: f.revision, file: first }, (d) => {
        done += d;
        bar?.update(done, first);
      });
      await rename(part, blob);
      for (const name of g.files) await linkIntoSnapshot(f.folder, f.commit, name, g.want.etag);
    }
  };
  await Promise.all(Array.from({ length: Math.min(CONCURRENCY, queue.length) }, worker));
  bar?.finish("");
}

async function ensureDirs(folder: string): Promise<void> {
  await mkdir(path.join(folder, "blobs"), { recursive: true });
  await mkdir(path.join(folder, "refs"), { recursive: true });
}

/**
 * Downloads (or finds in the HF cache) the model files of a Hub repo and returns its snapshot folder
 * `<cache>/models--org--name/snapshots/<commit>`. `repo` is `org/name` or `org/name@revision`.
 */
export async function downloadModel(repo: string, opts: DownloadOptions = {}): Promise<string> {
  const id = parseRepoId(repo);
  if (!id) throw new HubError(`${repo}: not a Hub repo id (expected org/name or org/name@revision)`);
  if (opts.revision && id.revision && opts.revision !== id.revision) {
    throw new HubError(`${repo}: revision "${id.revision}" in the id differs from the revision option "${opts.revision}"`);
  }
  const revision = opts.revision ?? id.revision ?? "main";
  if (!safeRelative(revision)) throw new HubError(`${repo}: bad revision ${JSON.stringify(revision)}`);
  const token = await findToken(opts);
  try {
    return await snapshotFor(id.repo, revision, token, opts);
  } catch (e) {
    const msg = e instanceof HubError ? e.message : `${id.repo}@${revision}: ${(e as Error).message ?? String(e)}`;
    throw new HubError(scrubToken(msg, token), e instanceof HubError ? e.status : undefined);
  }
}

async function snapshotFor(repo: string, revision: string, token: string | undefined, opts: DownloadOptions): Promise<string> {
  for (const f of opts.files ?? []) {
    if (!safeRelative(f)) throw new HubError(`${repo}: bad file name ${JSON.stringify(f)} in files`);
    if (PICKLE.test(f)) throw new HubError(`${f} of ${repo}: PyTorch pickle files (*.bin, *.pt) are never downloaded; use the repo's *.safetensors`);
  }
  const cacheDir = hubCacheDir(opts.cacheDir);
  const folder = repoFolder(cacheDir, repo);
  const offline = opts.offline ?? envTrue(process.env.HF_HUB_OFFLINE);

  // 1. The cache: a complete snapshot needs no network; offline mode accepts one that has the needed files.
  const ref = await readRef(folder, revision);
  const cached = ref && (await stat(snapshotDir(folder, ref)).catch(() => undefined))?.isDirectory() ? ref : undefined;
  if (cached) {
    const check = await checkSnapshot(folder, cached, opts.files);
    if (check.missing.length === 0 && (offline || check.undecided.length === 0)) return snapshotDir(folder, cached);
    if (offline) {
      throw new HubError(
        `${repo}@${revision}: offline mode (HF_HUB_OFFLINE) and the cached snapshot ${snapshotDir(folder, cached)} is missing ${check.missing.join(", ")}`,
      );
    }
  } else if (offline) {
    const need = opts.files?.join(", ") ?? `config.json, ${WEIGHTS_HINT}`;
    throw new HubError(
      `${repo}@${revision}: offline mode (HF_HUB_OFFLINE) and the revision is not in the cache ${cacheDir}; missing ${need}. ` +
        `Download it once while online (vzt download ${repo}${revision === "main" ? "" : "@" + revision}).`,
    );
  }

  // 2. The Hub: file list and commit, then only the files the model needs.
  const http: HubHttp = {
    hubUrl: (opts.hubUrl ?? process.env.HF_ENDPOINT ?? "https://huggingface.co").replace(/\/+$/, ""),
    token,
    attempts: Math.max(1, opts.attempts ?? 5),
    retryDelayMs: opts.retryDelayMs ?? 1000,
  };
  const meta = await fetchRevisionInfo(http, repo, revision);
  const f: Fetcher = {
    http,
    repo,
    revision,
    commit: meta.sha,
    folder,
    byName: new Map(meta.siblings.map((s) => [s.rfilename, s])),
    progress: opts.progress ?? true,
  };
  await ensureDirs(folder);
  if (revision !== meta.sha) await writeRef(folder, revision, meta.sha);
  const snap = snapshotDir(folder, meta.sha);

  if (opts.files) {
    for (const name of opts.files) {
      if (!f.byName.has(name)) throw new HubError(`file ${name} not found in ${repo} at revision "${revision}" (commit ${meta.sha})`, 404);
    }
    await fetchFiles(f, opts.files);
    return snap;
  }

  const names = MODEL_FILES.filter((n) => f.byName.has(n));
  if (f.byName.has(INDEX)) {
    await fetchFiles(f, [INDEX]);
    for (const shard of await indexShards(path.join(snap, INDEX))) {
      if (!f.byName.has(shard)) throw new HubError(`${INDEX} of ${repo}@${revision} lists shard ${shard}, which is not in the repo`);
      names.push(shard);
    }
  } else {
    const weights = [...f.byName.keys()].filter((n) => !n.includes("/") && n.endsWith(".safetensors")).sort();
    const pickles = [...f.byName.keys()].filter((n) => !n.includes("/") && PICKLE.test(n));
    if (weights.length === 0 && pickles.length > 0) {
      throw new HubError(
        `${repo}@${revision} has only PyTorch pickle weights (${pickles.join(", ")}), which are never downloaded; ` +
          `use a repo with *.safetensors weights, or convert them once in Python (save_pretrained(dir, safe_serialization=True))`,
      );
    }
    names.push(...weights);
    await markMissing(folder, meta.sha, INDEX);
    if (weights.length === 0) await markMissing(folder, meta.sha, SINGLE);
  }
  for (const n of MODEL_FILES) if (!f.byName.has(n)) await markMissing(folder, meta.sha, n);
  await fetchFiles(f, names);
  return snap;
}
