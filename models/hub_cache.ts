// The Hugging Face cache layout, byte-compatible with huggingface_hub:
//   <cache>/models--org--name/blobs/<etag>                     file contents, named by sha256 (LFS) or git oid
//   <cache>/models--org--name/snapshots/<commit>/<path>        relative symlinks ../../blobs/<etag>
//   <cache>/models--org--name/refs/<revision>                  the commit sha (no newline)
//   <cache>/models--org--name/.no_exist/<commit>/<path>        empty marker: the file is not in that commit
import { copyFile, mkdir, readFile, rename, rm, stat, symlink, writeFile } from "node:fs/promises";
import path from "node:path";
import { getHFHubCachePath, getRepoFolderName } from "@huggingface/hub";

/** The cache root: `cacheDir`, else HF_HUB_CACHE, else $HF_HOME/hub, else ~/.cache/huggingface/hub. */
export function hubCacheDir(cacheDir?: string): string {
  return cacheDir ?? getHFHubCachePath();
}

/** `<cache>/models--org--name`. */
export function repoFolder(cacheDir: string, repo: string): string {
  return path.join(cacheDir, getRepoFolderName({ name: repo, type: "model" }));
}

export function snapshotDir(folder: string, commit: string): string {
  return path.join(folder, "snapshots", commit);
}

export function blobPath(folder: string, etag: string): string {
  return path.join(folder, "blobs", etag);
}

/** The commit a revision points to: the revision itself when it is a 40-hex sha, else refs/<revision>. */
export async function readRef(folder: string, revision: string): Promise<string | undefined> {
  if (/^[0-9a-f]{40}$/.test(revision)) return revision;
  const text = await readFile(path.join(folder, "refs", revision), "utf8").catch(() => undefined);
  const sha = text?.trim();
  return sha && /^[0-9a-f]{40}$/.test(sha) ? sha : undefined;
}

export async function writeRef(folder: string, revision: string, commit: string): Promise<void> {
  const ref = path.join(folder, "refs", revision);
  await mkdir(path.dirname(ref), { recursive: true });
  if ((await readFile(ref, "utf8").catch(() => undefined)) === commit) return;
  await writeFile(ref + ".tmp", commit);
  await rename(ref + ".tmp", ref);
}

/** True when `file` is a regular file (a symlink to a present blob counts). */
export async function isFile(file: string): Promise<boolean> {
  return (await stat(file).catch(() => undefined))?.isFile() ?? false;
}

/** Size of a present blob, or undefined. */
export async function blobSize(file: string): Promise<number | undefined> {
  const s = await stat(file).catch(() => undefined);
  return s?.isFile() ? s.size : undefined;
}

/** Points snapshots/<commit>/<file> at blobs/<etag> with a relative symlink (a copy where symlinks fail). */
export async function linkIntoSnapshot(folder: string, commit: string, file: string, etag: string): Promise<void> {
  const dst = path.join(snapshotDir(folder, commit), file);
  const src = blobPath(folder, etag);
  await mkdir(path.dirname(dst), { recursive: true });
  await rm(dst, { force: true });
  try {
    await symlink(path.relative(path.dirname(dst), src), dst);
  } catch {
    await copyFile(src, dst);
  }
}

function noExistPath(folder: string, commit: string, file: string): string {
  return path.join(folder, ".no_exist", commit, file);
}

/** Records that `file` is not in `commit` (huggingface_hub's `.no_exist` marker). */
export async function markMissing(folder: string, commit: string, file: string): Promise<void> {
  const p = noExistPath(folder, commit, file);
  await mkdir(path.dirname(p), { recursive: true });
  await writeFile(p, "");
}

export async function isMarkedMissing(folder: string, commit: string, file: string): Promise<boolean> {
  return isFile(noExistPath(folder, commit, file));
}
