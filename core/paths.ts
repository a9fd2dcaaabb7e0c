// Where this package is installed: the folder holding its package.json, found from a module's location.
import { existsSync, readFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

/** The nearest folder above `fromUrl` (a module's import.meta.url) whose package.json is visionzip-tune's. */
export function packageRoot(fromUrl: string = import.meta.url): string {
  let dir = path.dirname(fileURLToPath(fromUrl));
  for (;;) {
    const file = path.join(dir, "package.json");
    if (existsSync(file)) {
      try {
        if ((JSON.parse(readFileSync(file, "utf8")) as { name?: string }).name === "visionzip-tune") return dir;
      } catch {
        // not ours: keep walking up
      }
    }
    const up = path.dirname(dir);
    if (up === dir) throw new Error(`visionzip-tune's package.json not found above ${fileURLToPath(fromUrl)}`);
    dir = up;
  }
}
