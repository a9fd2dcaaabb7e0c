// Bad-data policy: `onError: "raise"` stops at the first bad row; `"skip"` drops it and records it here, so nothing is
// dropped silently: counts by reason plus the first N locations, summarised at the end of a pass.
import { DataError } from "../core/errors.js";

export type OnError = "raise" | "skip";

/** Why a row was rejected (the key SkipReport counts by). */
export type SkipReason =
  | "corrupt shard"
  | "missing column"
  | "wrong type"
  | "empty conversation"
  | "no assistant turn"
  | "missing <image>"
  | "<image> without image"
  | "unreadable image"
  | "bad value";

/** A DataError that says which SkipReason it is. */
export class RowError extends DataError {
  constructor(
    readonly reason: SkipReason,
    detail: string,
    where: { file?: string; batch?: number; row?: number; column?: string },
  ) {
    super(`${reason}: ${detail}`, where);
  }
}

export interface SkippedAt {
  reason: string;
  message: string;
  file?: string;
  batch?: number;
  row?: number;
  column?: string;
  /** Rows this entry stands for (a corrupt batch loses many). */
  rows?: number;
}

export class SkipReport {
  /** Rows skipped, all reasons. */
  rows = 0;
  /** Entries whose row count is unknown (a shard whose headers cannot be read). */
  unknownRows = 0;
  readonly byReason = new Map<string, number>();
  readonly first: SkippedAt[] = [];

  constructor(readonly keepFirst = 20) {}

  /** Records a skipped row (or `rows` rows; "unknown" when no header said how many) for `err`. */
  add(err: Error, rows: number | "unknown" = 1): void {
    const reason = err instanceof RowError ? err.reason : err instanceof DataError ? classify(err.message) : "bad value";
    const n = rows === "unknown" ? 0 : rows;
    if (rows === "unknown") this.unknownRows++;
    this.rows += n;
    this.byReason.set(reason, (this.byReason.get(reason) ?? 0) + n);
    if (this.first.length < this.keepFirst) {
      const where = err instanceof DataError ? err.where : {};
      this.first.push({ reason, message: err.message, ...where, rows: rows === "unknown" ? undefined : rows });
    }
  }

  get empty(): boolean {
    return this.rows === 0 && this.unknownRows === 0;
  }

  /** "skipped 12 rows (wrong type 10, missing <image> 2); first: ..." */
  summary(): string {
    if (this.empty) return "skipped 0 rows";
    const reasons = [...this.byReason].map(([r, n]) => `${r} ${n}`).join(", ");
    const unknown = this.unknownRows ? ` + ${this.unknownRows} unreadable shard part(s) of unknown size` : "";
    const first = this.first.map((s) => `  - ${s.message}${s.rows !== undefined && s.rows !== 1 ? ` [${s.rows} rows]` : ""}`);
    return `skipped ${this.rows} rows${unknown} (${reasons}); first ${first.length}:\n${first.join("\n")}`;
  }

  toJSON() {
    return { rows: this.rows, unknownRows: this.unknownRows, byReason: Object.fromEntries(this.byReason), first: this.first };
  }
}

function classify(message: string): SkipReason {
  return /truncated|corrupt|not an Arrow|compressed|footer|Feather/.test(message) ? "corrupt shard" : "bad value";
}
