// A fake Hugging Face Hub on 127.0.0.1 for tests: serves repos the way the Hub does
// (GET /api/models/{repo}/revision/{rev}?blobs=true and GET /{repo}/resolve/{rev}/{path} with Range and etags,
// X-Error-Code 404s, 401 for private repos), logs every request, and injects faults (HTTP status, cut bodies).
import { createHash } from "node:crypto";
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";

export interface FakeRepo {
  /** Branch/tag -> commit sha. */
  refs: Record<string, string>;
  /** Commit sha -> files (path -> bytes). */
  commits: Record<string, Record<string, Uint8Array>>;
  /** When set, requests must carry `Authorization: Bearer <token>`, else 401. */
  token?: string;
}

export interface LoggedRequest {
  method: string;
  url: string;
  authorization?: string;
  range?: string;
}

export interface Fault {
  /** Answer with this HTTP status ... */
  status?: number;
  /** ... or send headers and half the body, then destroy the socket. */
  cut?: boolean;
  /** How many times (default: always). */
  times?: number;
}

export interface FakeHub {
  url: string;
  requests: LoggedRequest[];
  /** Faults by request path prefix, e.g. "/org/name/resolve/" or "/api/models/org/name". */
  faults: Map<string, Fault>;
  /** Answer Range requests with the whole file (200), like a server without range support. */
  ignoreRange: boolean;
  close(): Promise<void>;
}

export const sha256Hex = (b: Uint8Array) => createHash("sha256").update(b).digest("hex");
export const gitOid = (b: Uint8Array) => createHash("sha1").update(`blob ${b.length}\0`).update(b).digest("hex");
const isLfs = (p: string) => /\.(safetensors|bin|pt)$/.test(p);

function sendError(res: ServerResponse, status: number, code: string | undefined, message: string): void {
  res.writeHead(status, { "Content-Type": "application/json", ...(code ? { "X-Error-Code": code } : {}) });
  res.end(JSON.stringify({ error: message }));
}

export async function startFakeHub(repos: Record<string, FakeRepo>): Promise<FakeHub> {
  const requests: LoggedRequest[] = [];
  const faults = new Map<string, Fault>();
  const hub = { ignoreRange: false };

  /** The first active fault whose prefix matches, counted as used. */
  const takeFault = (pathname: string): Fault | undefined => {
    for (const [prefix, fault] of faults) {
      if (!pathname.startsWith(prefix) || (fault.times ?? Infinity) <= 0) continue;
      if (fault.times !== undefined) fault.times--;
      return fault;
    }
    return undefined;
  };

  const handle = (req: IncomingMessage, res: ServerResponse) => {
    const url = new URL(req.url ?? "/", "http://x");
    requests.push({
      method: req.method ?? "",
      url: url.pathname + url.search,
      authorization: req.headers.authorization,
      range: req.headers.range,
    });
    const fault = takeFault(url.pathname);
    if (fault?.status) return sendError(res, fault.status, undefined, `injected ${fault.status}`);
    const api = /^\/api\/models\/([^/]+\/[^/]+)\/revision\/(.+)$/.exec(url.pathname);
    const resolve = /^\/([^/]+\/[^/]+)\/resolve\/([^/]+)\/(.+)$/.exec(url.pathname);
    const repoId = api?.[1] ?? resolve?.[1];
    const repo = repoId ? repos[repoId] : undefined;
    if (!repo) return sendError(res, 404, "RepoNotFound", "Repository Not Found");
    if (repo.token && req.headers.authorization !== `Bearer ${repo.token}`) {
      // Echoes what it got, so tests can check that clients scrub the token out of their messages.
      return sendError(res, 401, "RepoNotFound", `Invalid credentials in Authorization header (${req.headers.authorization ?? "none"})`);
    }
    const rev = decodeURIComponent((api?.[2] ?? resolve?.[2])!);
    const sha = repo.commits[rev] ? rev : repo.refs[rev];
    const files = sha ? repo.commits[sha] : undefined;
    if (!sha || !files) return sendError(res, 404, "RevisionNotFound", `Invalid rev id: ${rev}`);
    if (api) {
      const siblings = Object.entries(files).map(([rfilename, b]) => ({
        rfilename,
        size: b.length,
        blobId: isLfs(rfilename) ? gitOid(new TextEncoder().encode(`lfs pointer ${sha256Hex(b)}`)) : gitOid(b),
        ...(isLfs(rfilename) ? { lfs: { sha256: sha256Hex(b), size: b.length, pointerSize: 134 } } : {}),
      }));
      res.writeHead(200, { "Content-Type": "application/json" });
      return res.end(JSON.stringify({ _id: "x", id: repoId, sha, siblings }));
    }
    const file = resolve![3]!.split("/").map(decodeURIComponent).join("/");
    const bytes = files[file];
    if (!bytes) return sendError(res, 404, "EntryNotFound", `${file} does not exist on "${rev}"`);
    serveFile(req, res, bytes, isLfs(file) ? sha256Hex(bytes) : gitOid(bytes), sha, fault?.cut === true);
  };

  const serveFile = (req: IncomingMessage, res: ServerResponse, bytes: Uint8Array, etag: string, sha: string, cut: boolean) => {
    const m = /^bytes=(\d+)-$/.exec(req.headers.range ?? "");
    const start = m && !hub.ignoreRange ? Number(m[1]) : 0;
    if (start > bytes.length) {
      res.writeHead(416, { "Content-Range": `bytes */${bytes.length}` });
      return res.end();
    }
    const body = bytes.subarray(start);
    const headers: Record<string, string | number> = {
      "Content-Length": body.length,
      "Accept-Ranges": "bytes",
      ETag: `"${etag}"`,
      "X-Repo-Commit": sha,
      "Content-Type": "application/octet-stream",
    };
    if (start > 0) headers["Content-Range"] = `bytes ${start}-${bytes.length - 1}/${bytes.length}`;
    res.writeHead(start > 0 ? 206 : 200, headers);
    if (!cut) return res.end(body);
    res.flushHeaders();
    res.write(body.subarray(0, Math.floor(body.length / 2)), () => setTimeout(() => res.socket?.destroy(), 20));
  };

  const server = createServer(handle);
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const port = (server.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    faults,
    get ignoreRange() {
      return hub.ignoreRange;
    },
    set ignoreRange(v: boolean) {
      hub.ignoreRange = v;
    },
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}
