// config.json of a model folder, read with errors that name the file and key.
import { readFile } from "node:fs/promises";
import path from "node:path";
import { ConfigError } from "../core/errors.js";

export type Json = Record<string, unknown>;

export async function readConfigJson(dir: string, name = "config.json"): Promise<Json> {
  const file = path.join(dir, name);
  let text: string;
  try {
    text = await readFile(file, "utf8");
  } catch (e) {
    throw new ConfigError([`cannot read ${name} (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`], file);
  }
  try {
    const json = JSON.parse(text) as unknown;
    if (json === null || typeof json !== "object" || Array.isArray(json)) throw new Error("not a JSON object");
    return json as Json;
  } catch (e) {
    throw new ConfigError([`not valid JSON: ${(e as Error).message}`], file);
  }
}

/** Typed accessors that collect every problem with its key path, so one error lists them all. */
export class JsonReader {
  readonly problems: string[] = [];
  constructor(private readonly json: Json, private readonly prefix = "") {}

  private get(key: string): unknown {
    return this.json[key];
  }

  num(key: string, fallback?: number): number {
    const v = this.get(key);
    if (v === undefined || v === null) {
      if (fallback !== undefined) return fallback;
      this.problems.push(`${this.prefix}${key}: required number is missing`);
      return NaN;
    }
    if (typeof v !== "number" || !Number.isFinite(v)) {
      this.problems.push(`${this.prefix}${key}: expected a number, got ${JSON.stringify(v)}`);
      return NaN;
    }
    return v;
  }

  int(key: string, fallback?: number): number {
    const v = this.num(key, fallback);
    if (Number.isFinite(v) && !Number.isInteger(v)) this.problems.push(`${this.prefix}${key}: expected an integer, got ${v}`);
    return v;
  }

  str(key: string, fallback?: string): string {
    const v = this.get(key);
    if (v === undefined || v === null) {
      if (fallback !== undefined) return fallback;
      this.problems.push(`${this.prefix}${key}: required string is missing`);
      return "";
    }
    if (typeof v !== "string") {
      this.problems.push(`${this.prefix}${key}: expected a string, got ${JSON.stringify(v)}`);
      return "";
    }
    return v;
  }

  bool(key: string, fallback: boolean): boolean {
    const v = this.get(key);
    if (v === undefined || v === null) return fallback;
    if (typeof v !== "boolean") {
      this.problems.push(`${this.prefix}${key}: expected true or false, got ${JSON.stringify(v)}`);
      return fallback;
    }
    return v;
  }

  /** Throws one ConfigError listing every problem found so far. */
  done(file?: string): void {
    if (this.problems.length) throw new ConfigError(this.problems, file);
  }
}
