// Path fields: a file or folder kept as written; with `mustExist`, checked on disk at validation time, relative
// paths resolved against the working directory (CheckContext.cwd), `~` expanded.
import { existsSync, statSync } from "node:fs";
import { homedir } from "node:os";
import path from "node:path";
import { field, INVALID, show, type Common, type Field } from "./dsl.js";

export interface PathOptions extends Common<string> {
  /** Checked on disk at validation time (unless checkPaths is off). */
  mustExist?: boolean;
  /** What must be there. Default "any". */
  type?: "file" | "folder" | "any";
  /** What a valid value is, for messages (default "a path to a file or folder"). */
  what?: string;
  /** Also accept a string that is not a local path: a Hub id (returns true) or a glob (returns whether it matches). */
  accept?: (p: string, resolved: string) => boolean;
}

/** `~` expanded and relative paths resolved against `cwd`. */
export function resolvePath(p: string, cwd: string): string {
  const home = p === "~" || p.startsWith("~/") ? path.join(homedir(), p.slice(1)) : p;
  return path.resolve(cwd, home);
}

/** A file or folder path, kept as written; with `mustExist`, it must exist (relative to the working directory). */
export function pathField(o: PathOptions = {}): Field<string> {
  const type = o.type ?? "any";
  const what = type === "file" ? "a file" : type === "folder" ? "a folder" : "a file or folder";
  const expected = o.what ?? `a path to ${what}`;
  return field(expected, o, (v, key, ctx) => {
    if (typeof v !== "string" || v === "") {
      ctx.report(key, `expected ${expected}, got ${show(v)}`);
      return INVALID;
    }
    if (!o.mustExist || !ctx.checkPaths) return v;
    const resolved = resolvePath(v, ctx.cwd);
    if (existsSync(resolved)) {
      const isDir = statSync(resolved).isDirectory();
      if ((type === "file" && isDir) || (type === "folder" && !isDir)) {
        ctx.report(key, `"${v}" is a ${isDir ? "folder" : "file"}, expected ${what}`);
        return INVALID;
      }
      return v;
    }
    if (o.accept?.(v, resolved)) return v;
    ctx.report(key, `no such ${type === "any" ? "file or folder" : type} "${v}" (relative paths resolve against the working directory ${ctx.cwd})`);
    return INVALID;
  });
}
