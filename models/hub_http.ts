// HTTP to the Hugging Face Hub with plain fetch: repo metadata (file list, commit sha, etags, sizes) and resumable,
// verified file transfers with retries and backoff. Failures become HubError with the access token scrubbed.
import { createHash, type Hash } from "node:crypto";
import { createReadStream } from "node:fs";
import { open, stat, truncate } from "node:fs/promises";
import { HubError } from "../core/errors.js";
import { warn } from "../core/log.js";

/** How to talk to the Hub. */
export interface HubHttp {
  hubUrl: string;
  /** Sent as `Authorization: Bearer ...`; never printed. */
  token?: string;
  /** Attempts per request (first try included). */
  attempts: number;
  /** Backoff before retry n is `retryDelayMs * 2^(n-1)`, capped at 30 s. */
  retryDelayMs: number;
}

/** One file of a repo revision, as `/api/models/{repo}/revision/{rev}?blobs=true` lists it. */
export interface HubSibling {
  rfilename: string;
  size?: number;
  /** Git blob oid (sha1 of `blob <size>\0<bytes>`), the etag of a regular file. */
  blobId?: string;
  /** Git LFS pointer: sha256 of the content, the etag of an LFS file. */
  lfs?: { sha256?: string; oid?: string; size?: number };
}

export interface RepoRevisionInfo {
  sha: string;
  siblings: HubSibling[];
}

/** What a transfer must produce: the byte size and, when known, a checksum to verify. */
export interface BlobExpectation {
  size?: number;
  sha256?: string;
  gitOid?: string;
}

/** Where a request belongs, for error messages. */
export interface HubTarget {
  repo: string;
  revision: string;
  file?: string;
}

/** Replaces the token (and anything shaped like an `hf_` token) in a message. */
export function scrubToken(text: string, token: string | undefined): string {
  let out = token ? text.split(token).join("***") : text;
  out = out.replace(/hf_[A-Za-z0-9]{8,}/g, "hf_***");
  return out;
}

/** A failure worth another attempt (network, 5xx, 429, cut transfer, checksum mismatch). */
class Retryable extends Error {
  constructor(
    message: string,
    readonly status?: number,
  ) {
    super(message);
  }
}

function authHeaders(http: HubHttp): Record<string, string> {
  return http.token ? { Authorization: `Bearer ${http.token}` } : {};
}

function encodePath(file: string): string {
  return file.split("/").map(encodeURIComponent).join("/");
}

export function revisionUrl(http: HubHttp, repo: string, revision: string): string {
  return `${http.hubUrl}/api/models/${repo}/revision/${encodeURIComponent(revision)}?blobs=true`;
}

export function resolveUrl(http: HubHttp, repo: string, revision: string, file: string): string {
  return `${http.hubUrl}/${repo}/resolve/${encodeURIComponent(revision)}/${encodePath(file)}`;
}

function describe(t: HubTarget): string {
  return t.file ? `${t.file} of ${t.repo}@${t.revision}` : `${t.repo}@${t.revision}`;
}

/** Turns a non-OK response into a HubError (fatal) or a Retryable. */
async function failure(res: Response, t: HubTarget, http: HubHttp): Promise<Error> {
  const code = res.headers.get("x-error-code") ?? "";
  let detail = "";
  try {
    const body = (await res.text()).slice(0, 300);
    const j = JSON.parse(body) as { error?: unknown };
    detail = typeof j.error === "string" ? j.error : "";
  } catch {
    // not JSON: no detail
  }
  const said = detail ? ` (Hub says: ${detail})` : "";
  const status = res.status;
  if (status >= 500 || status === 429 || status === 408) {
    return new Retryable(`${describe(t)}: HTTP ${status} from ${http.hubUrl}${said}`, status);
  }
  if (status === 401 || (status === 403 && code !== "GatedRepo")) {
    const hint = http.token
      ? "the token in HF_TOKEN was refused or has no access to it; check the token and that you accepted the model's terms on its Hub page"
      : "it is gated or private (or does not exist); set HF_TOKEN (or HUGGING_FACE_HUB_TOKEN) to a Hugging Face access token with access to it";
    return new HubError(`${describe(t)}: HTTP ${status} unauthorized: ${hint}${said}`, status);
  }
  if (status === 403) {
    return new HubError(
      `${describe(t)}: HTTP 403: ${t.repo} is gated; accept its terms at ${http.hubUrl}/${t.repo} with the account of HF_TOKEN${said}`,
      status,
    );
  }
  if (status === 404) {
    const what =
      code === "RepoNotFound"
        ? `repository ${t.repo} not found on ${http.hubUrl}`
        : code === "RevisionNotFound"
          ? `revision "${t.revision}" not found in ${t.repo}`
          : code === "EntryNotFound" || t.file
            ? `file ${t.file ?? "?"} not found in ${t.repo} at revision "${t.revision}"`
            : `repository ${t.repo} or its revision "${t.revision}" not found on ${http.hubUrl}`;
    return new HubError(`${what} (HTTP 404)${said}`, status);
  }
  return new HubError(`${describe(t)}: HTTP ${status}${said}`, status);
}

function networkReason(e: unknown): string {
  const err = e as { message?: string; cause?: { code?: string; message?: string } };
  const cause = err.cause?.code ?? err.cause?.message;
  return cause ? `${err.message ?? "fetch failed"}: ${cause}` : (err.message ?? String(e));
}

/** Runs `attempt` until it succeeds, throws a HubError, or runs out of attempts (then a HubError). */
async function withRetries<T>(t: HubTarget, http: HubHttp, attempt: () => Promise<T>): Promise<T> {
  let last: Retryable | undefined;
  for (let n = 1; n <= http.attempts; n++) {
    if (n > 1) {
      const delay = Math.min(30_000, http.retryDelayMs * 2 ** (n - 2));
      warn(scrubToken(`${last?.message ?? "failed"}; retry ${n - 1}/${http.attempts - 1} in ${(delay / 1000).toFixed(1)} s`, http.token));
      await new Promise((r) => setTimeout(r, delay));
    }
    try {
      return await attempt();
    } catch (e) {
      if (e instanceof HubError) throw e;
      last = e instanceof Retryable ? e : new Retryable(`${describe(t)}: cannot reach ${http.hubUrl} (${networkReason(e)})`);
    }
  }
  const kind = last?.status !== undefined ? "server error, " : "";
  throw new HubError(`${last?.message ?? describe(t)}; ${kind}gave up after ${http.attempts} attempts`, last?.status);
}

/** GET /api/models/{repo}/revision/{revision}?blobs=true: the commit sha and every file with size and etag. */
export async function fetchRevisionInfo(http: HubHttp, repo: string, revision: string): Promise<RepoRevisionInfo> {
  const t: HubTarget = { repo, revision };
  return withRetries(t, http, async () => {
    const res = await fetch(revisionUrl(http, repo, revision), { headers: { ...authHeaders(http), Accept: "application/json" } });
    if (!res.ok) throw await failure(res, t, http);
    const j = (await res.json().catch(() => undefined)) as { sha?: unknown; siblings?: unknown } | undefined;
    if (!j || typeof j.sha !== "string" || !/^[0-9a-f]{40}$/.test(j.sha) || !Array.isArray(j.siblings)) {
      throw new HubError(`${describe(t)}: unexpected answer from ${revisionUrl(http, repo, revision)} (no commit sha or file list)`);
    }
    const siblings = (j.siblings as HubSibling[]).filter((s) => s && typeof s.rfilename === "string");
    return { sha: j.sha, siblings };
  });
}

async function sizeOf(file: string): Promise<number> {
  return (await stat(file).catch(() => undefined))?.size ?? 0;
}

async function feedFile(hash: Hash, file: string): Promise<void> {
  for await (const chunk of createReadStream(file)) hash.update(chunk as Buffer);
}

/**
 * Downloads `url` into `part` (an `.incomplete` file), resuming from the bytes already there with a Range request;
 * retries cut transfers and server errors; verifies size and checksum. `onBytes(delta)` reports progress
 * (negative when a transfer restarts from zero). On success `part` holds exactly the expected bytes.
 */
export async function downloadToFile(
  http: HubHttp,
  url: string,
  part: string,
  want: BlobExpectation,
  t: HubTarget,
  onBytes: (delta: number) => void,
): Promise<void> {
  let counted = 0; // bytes of `part` already reported to onBytes
  const report = (n: number) => {
    counted += n;
    onBytes(n);
  };
  await withRetries(t, http, async () => {
    let have = await sizeOf(part);
    if (want.size !== undefined && have > want.size) {
      await truncate(part, 0);
      have = 0;
    }
    report(have - counted);
    let total = want.size;
    if (total === undefined || have < total) {
      const headers: Record<string, string> = { ...authHeaders(http) };
      if (have > 0) headers.Range = `bytes=${have}-`;
      const res = await fetch(url, { headers });
      if (res.status === 416) {
        await truncate(part, 0);
        report(-counted);
        throw new Retryable(`${describe(t)}: server refused to resume (HTTP 416); restarting`);
      }
      if (!res.ok) throw await failure(res, t, http);
      const range = /^bytes (\d+)-\d+\/(\d+)$/.exec(res.headers.get("content-range") ?? "");
      const resumed = res.status === 206 && range !== null && Number(range[1]) === have;
      if (res.status === 206 && !resumed) {
        await res.body?.cancel();
        await truncate(part, 0);
        report(-counted);
        throw new Retryable(`${describe(t)}: server sent an unexpected range; restarting`);
      }
      if (!resumed && have > 0) report(-counted); // full body: restart from zero
      if (total === undefined) {
        const len = Number(res.headers.get("content-length") ?? NaN);
        total = range ? Number(range[2]) : Number.isFinite(len) ? len : undefined;
      }
      const fh = await open(part, resumed ? "a" : "w");
      try {
        if (res.body) {
          for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
            let off = 0;
            while (off < chunk.length) off += (await fh.write(chunk, off, chunk.length - off)).bytesWritten;
            report(chunk.length);
          }
        }
      } catch (e) {
        const fsErr = e as NodeJS.ErrnoException;
        if (fsErr.syscall) throw new HubError(`${describe(t)}: cannot write ${part}: ${fsErr.code ?? fsErr.message}`);
        throw new Retryable(`${describe(t)}: transfer cut after ${counted} bytes (${networkReason(e)})`);
      } finally {
        await fh.close();
      }
    }
    const got = await sizeOf(part);
    if (total !== undefined && got !== total) {
      throw new Retryable(`${describe(t)}: transfer ended at ${got} of ${total} bytes`);
    }
    await verify(part, got, want, t, report, counted);
  });
}

/** Checks the sha256 (LFS) or git blob oid (regular file) of a finished transfer; a mismatch restarts it. */
async function verify(
  part: string,
  size: number,
  want: BlobExpectation,
  t: HubTarget,
  report: (n: number) => void,
  counted: number,
): Promise<void> {
  let hash: Hash | undefined;
  let expected: string | undefined;
  if (want.sha256 && /^[0-9a-f]{64}$/.test(want.sha256)) {
    hash = createHash("sha256");
    expected = want.sha256;
  } else if (want.gitOid && /^[0-9a-f]{40}$/.test(want.gitOid)) {
    hash = createHash("sha1").update(`blob ${size}\0`);
    expected = want.gitOid;
  }
  if (!hash || !expected) return;
  await feedFile(hash, part);
  const got = hash.digest("hex");
  if (got !== expected) {
    await truncate(part, 0);
    report(-counted);
    throw new Retryable(`${describe(t)}: checksum mismatch (expected ${expected}, got ${got}); downloading again`);
  }
}
