// Whole-file writes that never leave a half-written file under the final name: temporary file, fsync, rename.
import { mkdirSync, renameSync, writeFileSync, openSync, fsyncSync, closeSync } from "node:fs";
import { open, rename, unlink } from "node:fs/promises";
import path from "node:path";

const tmpName = (file: string) => `${file}.tmp-${process.pid}-${Date.now()}`;

/** Writes `data` to `file` atomically (temp + fsync + rename); the folder is created when missing. */
export async function writeFileAtomic(file: string, data: Uint8Array | string): Promise<void> {
  const tmp = tmpName(file);
  const fh = await open(tmp, "w");
  try {
    await fh.writeFile(data);
    await fh.sync();
  } catch (e) {
    await fh.close();
    await unlink(tmp).catch(() => {});
    throw e;
  }
  await fh.close();
  await rename(tmp, file);
}

/** The synchronous form, for small JSON/YAML files written on the way out. */
export function writeFileAtomicSync(file: string, data: Uint8Array | string): void {
  mkdirSync(path.dirname(file), { recursive: true });
  const tmp = tmpName(file);
  writeFileSync(tmp, data);
  const fd = openSync(tmp, "r+");
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, file);
}
