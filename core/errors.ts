// Error types that carry where the problem is: file, tensor, key, row.

/** A model file (safetensors, config.json, index) is malformed or does not match what the model needs. */
export class WeightsError extends Error {
  constructor(message: string, readonly file?: string, readonly tensor?: string) {
    super(message);
    this.name = "WeightsError";
  }
}

/** A config (YAML or config.json) holds bad values; `problems` lists every one found, each with its key path. */
export class ConfigError extends Error {
  constructor(readonly problems: string[], readonly file?: string) {
    super(
      problems.length === 1
        ? `${problems[0]}${file ? ` (${file})` : ""}`
        : `${problems.length} problems${file ? ` in ${file}` : ""}:\n${problems.map((p) => `  - ${p}`).join("\n")}`,
    );
    this.name = "ConfigError";
  }
}

/** A data record is bad; the message names the file, record batch, row and column. */
export class DataError extends Error {
  constructor(
    message: string,
    readonly where: { file?: string; batch?: number; row?: number; column?: string } = {},
  ) {
    const at = [
      where.file,
      where.batch !== undefined ? `batch ${where.batch}` : undefined,
      where.row !== undefined ? `row ${where.row}` : undefined,
      where.column !== undefined ? `column "${where.column}"` : undefined,
    ].filter(Boolean);
    super(at.length ? `${at.join(", ")}: ${message}` : message);
    this.name = "DataError";
  }
}

/** A model could not be fetched or resolved (Hub download, cache, offline mode). */
export class HubError extends Error {
  constructor(message: string, readonly status?: number) {
    super(message);
    this.name = "HubError";
  }
}
