// Hub download and model sources, against a fake Hub on 127.0.0.1 serving the golden llama_tiny files plus a fake
// tokenizer and a pickle that must never be fetched: cache layout, no-network reuse, offline mode, revisions,
// auth and token scrubbing, 404/500/network errors, cut transfers, sharded indexes, local paths.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { lstat, mkdir, mkdtemp, readdir, readFile, readlink, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { HubError } from "../../core/errors.js";
import { downloadModel, parseRepoId, resolveModelDir, type DownloadOptions } from "../../models/hub.js";
import { goldenDir } from "../helpers.js";
import { gitOid, sha256Hex, startFakeHub, type FakeHub } from "./fake_hub.js";

const REPO = "tiny-org/llama-tiny";
const PRIVATE = "tiny-org/private-tiny";
const SHA = createHash("sha1").update("commit 1").digest("hex");
const SHA2 = createHash("sha1").update("commit 2").digest("hex");
const TOKEN = "hf_SecretToken1234567890abcdef";
const enc = (s: string) => new TextEncoder().encode(s);

const llama = path.join(goldenDir(), "models", "llama_tiny");
const files: Record<string, Uint8Array> = {
  "config.json": await readFile(path.join(llama, "config.json")),
  "model.safetensors": await readFile(path.join(llama, "model.safetensors")),
  "tokenizer.json": enc(JSON.stringify({ version: "1.0", model: { type: "BPE", vocab: { a: 0, b: 1 }, merges: [] } })),
  "tokenizer_config.json": enc(JSON.stringify({ bos_token: "<s>", eos_token: "</s>" })),
  "pytorch_model.bin": enc("PICKLE".repeat(1000)),
  "README.md": enc("# tiny\n"),
};
const v2Config = enc(JSON.stringify({ model_type: "llama", hidden_size: 64, revision: 2 }));
const shard1 = files["model.safetensors"]!.slice(0, 1000);
const shard2 = files["model.safetensors"]!.slice(1000, 3000);
const index = enc(JSON.stringify({ metadata: {}, weight_map: { a: "model-00001-of-00002.safetensors", b: "model-00002-of-00002.safetensors", c: "model-00001-of-00002.safetensors" } }));

let hub: FakeHub;
const HOME = await mkdtemp(path.join(tmpdir(), "vzt-hub-home-"));
for (const k of ["HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_HUB_OFFLINE", "HF_ENDPOINT", "HF_HUB_CACHE", "HF_TOKEN_PATH"]) delete process.env[k];
process.env.HF_HOME = HOME; // no token file of the developer's is picked up

before(async () => {
  hub = await startFakeHub({
    [REPO]: { refs: { main: SHA, v2: SHA2 }, commits: { [SHA]: files, [SHA2]: { ...files, "config.json": v2Config } } },
    [PRIVATE]: { refs: { main: SHA }, commits: { [SHA]: files }, token: TOKEN },
    "tiny-org/bin-only": { refs: { main: SHA }, commits: { [SHA]: { "config.json": files["config.json"]!, "pytorch_model.bin": files["pytorch_model.bin"]! } } },
    "tiny-org/sharded": {
      refs: { main: SHA },
      commits: {
        [SHA]: {
          "config.json": files["config.json"]!,
          "model.safetensors.index.json": index,
          "model-00001-of-00002.safetensors": shard1,
          "model-00002-of-00002.safetensors": shard2,
          "consolidated.safetensors": enc("not listed by the index"),
        },
      },
    },
  });
});
after(async () => {
  await hub.close();
  await rm(HOME, { recursive: true, force: true });
});

async function tempCache(): Promise<string> {
  return mkdtemp(path.join(HOME, "cache-"));
}
function opts(cacheDir: string, more: DownloadOptions = {}): DownloadOptions {
  return { cacheDir, hubUrl: hub.url, progress: false, retryDelayMs: 1, ...more };
}
/** Requests made while `fn` runs. */
async function requestsDuring<T>(fn: () => Promise<T>): Promise<{ result: T; urls: string[] }> {
  const n = hub.requests.length;
  const result = await fn();
  return { result, urls: hub.requests.slice(n).map((r) => r.url) };
}
async function rejection(p: Promise<unknown>): Promise<HubError> {
  try {
    await p;
  } catch (e) {
    assert.ok(e instanceof HubError, `expected HubError, got ${String(e)}`);
    return e;
  }
  assert.fail("expected a rejection");
}
/** Runs fn with stderr captured (and silenced). */
async function captureStderr<T>(fn: () => Promise<T>): Promise<{ result?: T; error?: unknown; text: string }> {
  const orig = process.stderr.write.bind(process.stderr);
  let text = "";
  process.stderr.write = ((chunk: string | Uint8Array) => {
    text += typeof chunk === "string" ? chunk : Buffer.from(chunk).toString("utf8");
    return true;
  }) as typeof process.stderr.write;
  try {
    return { result: await fn(), text };
  } catch (error) {
    return { error, text };
  } finally {
    process.stderr.write = orig;
  }
}
/** The file at `file` holds exactly `expected`. */
async function assertBytes(file: string, expected: Uint8Array): Promise<void> {
  const got = await readFile(file);
  assert.ok(got.equals(Buffer.from(expected.buffer, expected.byteOffset, expected.byteLength)), `${file}: bytes differ from the source`);
}
const etagOf = (name: string, b: Uint8Array) => (name.endsWith(".safetensors") ? sha256Hex(b) : gitOid(b));

test("downloads only the model files into the HF cache layout; reuse and offline need no request", async () => {
  const cache = await tempCache();
  const { result: snap, urls } = await requestsDuring(() => downloadModel(REPO, opts(cache)));
  const folder = path.join(cache, "models--tiny-org--llama-tiny");
  assert.equal(snap, path.join(folder, "snapshots", SHA));
  assert.equal(await readFile(path.join(folder, "refs", "main"), "utf8"), SHA);
  const wanted = ["config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"];
  assert.deepEqual((await readdir(snap)).sort(), wanted);
  for (const name of wanted) {
    const p = path.join(snap, name);
    assert.ok((await lstat(p)).isSymbolicLink(), `${name} is a symlink`);
    assert.equal(await readlink(p), `../../blobs/${etagOf(name, files[name]!)}`);
    await assertBytes(p, files[name]!);
  }
  assert.deepEqual((await readdir(path.join(folder, "blobs"))).sort(), wanted.map((n) => etagOf(n, files[n]!)).sort());
  assert.ok(!urls.some((u) => u.includes(".bin") || u.includes("README")), `no pickle or README fetched: ${urls.join(" ")}`);
  assert.ok(urls[0]!.startsWith(`/api/models/${REPO}/revision/main`));
  assert.ok((await lstat(path.join(folder, ".no_exist", SHA, "generation_config.json"))).isFile(), ".no_exist marker");

  const again = await requestsDuring(() => downloadModel(REPO, opts(cache)));
  assert.equal(again.result, snap);
  assert.deepEqual(again.urls, [], "complete snapshot: no request");

  const off = await requestsDuring(() => downloadModel(REPO, { cacheDir: cache, offline: true, progress: false }));
  assert.equal(off.result, snap);
  assert.deepEqual(off.urls, []);

  process.env.HF_HUB_CACHE = cache;
  process.env.HF_ENDPOINT = "http://127.0.0.1:9"; // unreachable: must not be used
  process.env.HF_HUB_OFFLINE = "1";
  try {
    const viaEnv = await requestsDuring(() => resolveModelDir(REPO));
    assert.equal(viaEnv.result, snap);
    assert.deepEqual(viaEnv.urls, []);
    delete process.env.HF_HUB_OFFLINE;
    assert.equal(await resolveModelDir(REPO), snap, "complete snapshot, online: no network needed");
  } finally {
    delete process.env.HF_HUB_CACHE;
    delete process.env.HF_ENDPOINT;
    delete process.env.HF_HUB_OFFLINE;
  }

  // A snapshot that lost its weights: offline names the missing file.
  await rm(path.join(snap, "model.safetensors"));
  const e = await rejection(downloadModel(REPO, { cacheDir: cache, offline: true, progress: false }));
  assert.match(e.message, /tiny-org\/llama-tiny@main/);
  assert.match(e.message, /missing model\.safetensors/);
  // Online it is repaired from the blob already present, without a file transfer.
  const fix = await requestsDuring(() => downloadModel(REPO, opts(cache)));
  assert.deepEqual(fix.urls.map((u) => u.split("?")[0]), [`/api/models/${REPO}/revision/main`]);
  await assertBytes(path.join(snap, "model.safetensors"), files["model.safetensors"]!);
});

test("offline with an empty cache fails naming the repo, revision and missing files, with no request", async () => {
  const cache = await tempCache();
  const { result: e, urls } = await requestsDuring(() => rejection(downloadModel(`${REPO}@v2`, opts(cache, { offline: true }))));
  assert.match(e.message, /tiny-org\/llama-tiny@v2/);
  assert.match(e.message, /offline/);
  assert.match(e.message, /config\.json/);
  assert.match(e.message, /model\.safetensors/);
  assert.deepEqual(urls, []);
});

test("revisions: @<sha>, @main and a branch share blobs; an unknown revision is a 404 naming it", async () => {
  const cache = await tempCache();
  const folder = path.join(cache, "models--tiny-org--llama-tiny");
  const bySha = await requestsDuring(() => downloadModel(`${REPO}@${SHA}`, opts(cache)));
  assert.equal(bySha.result, path.join(folder, "snapshots", SHA));
  assert.ok(bySha.urls.every((u) => u.includes(`/${SHA}`)), bySha.urls.join(" "));
  await assert.rejects(lstat(path.join(folder, "refs", "main")), "no ref written for a sha");
  assert.equal(await resolveModelDir(`${REPO}@${SHA}`, opts(cache)), bySha.result);

  const main = await requestsDuring(() => downloadModel(REPO, opts(cache, { revision: "main" })));
  assert.equal(main.result, bySha.result);
  assert.equal(main.urls.length, 1, "only the revision lookup: the files are cached");
  assert.equal(await readFile(path.join(folder, "refs", "main"), "utf8"), SHA);

  const v2 = await requestsDuring(() => downloadModel(`${REPO}@v2`, opts(cache)));
  assert.equal(v2.result, path.join(folder, "snapshots", SHA2));
  assert.equal(await readFile(path.join(folder, "refs", "v2"), "utf8"), SHA2);
  await assertBytes(path.join(v2.result, "config.json"), v2Config);
  assert.deepEqual(
    v2.urls.filter((u) => u.includes("/resolve/")),
    [`/${REPO}/resolve/${SHA2}/config.json`],
    "only the changed file is transferred",
  );

  const e = await rejection(downloadModel(`${REPO}@nope`, opts(cache)));
  assert.equal(e.status, 404);
  assert.match(e.message, /revision "nope" not found in tiny-org\/llama-tiny/);
  await assert.rejects(downloadModel(`${REPO}@main`, opts(cache, { revision: "v2" })), /differs/);
  await assert.rejects(downloadModel(REPO, opts(cache, { revision: "../../etc" })), /bad revision/);
});

test("401 without or with a bad token says to set HF_TOKEN and never shows the token; a good token is sent", async () => {
  const cache = await tempCache();
  const none = await rejection(downloadModel(PRIVATE, opts(cache)));
  assert.equal(none.status, 401);
  assert.match(none.message, /tiny-org\/private-tiny/);
  assert.match(none.message, /set HF_TOKEN/);

  const bad = "hf_WrongToken0987654321zyxwvu";
  const run = await captureStderr(() => downloadModel(PRIVATE, opts(cache, { accessToken: bad })));
  assert.ok(run.error instanceof HubError);
  assert.equal(run.error.status, 401);
  assert.match(run.error.message, /HF_TOKEN/);
  assert.ok(hub.requests.some((r) => r.authorization === `Bearer ${bad}`), "bad token was sent");
  assert.ok(!run.error.message.includes(bad) && !run.text.includes(bad), `token leaked: ${run.error.message}`);
  assert.ok(!run.error.message.includes("WrongToken"), run.error.message);

  process.env.HF_TOKEN = TOKEN;
  try {
    const n = hub.requests.length;
    const ok = await captureStderr(() => downloadModel(PRIVATE, opts(cache, { progress: true })));
    assert.equal(ok.error, undefined, String(ok.error));
    const sent = hub.requests.slice(n);
    assert.ok(sent.length >= 5);
    assert.ok(sent.every((r) => r.authorization === `Bearer ${TOKEN}`), "every request carries the token");
    assert.match(ok.text, /download tiny-org\/private-tiny/, "progress bar drawn");
    assert.ok(!ok.text.includes(TOKEN), "token not logged");
    await assertBytes(path.join(ok.result!, "model.safetensors"), files["model.safetensors"]!);
  } finally {
    delete process.env.HF_TOKEN;
  }
});

test("404 names the missing repo or file", async () => {
  const cache = await tempCache();
  const repo = await rejection(downloadModel("tiny-org/no-such-model", opts(cache)));
  assert.equal(repo.status, 404);
  assert.match(repo.message, /repository tiny-org\/no-such-model not found/);

  const listed = await rejection(downloadModel(REPO, opts(cache, { files: ["config.json", "nope.json"] })));
  assert.equal(listed.status, 404);
  assert.match(listed.message, /file nope\.json not found in tiny-org\/llama-tiny/);

  hub.faults.set(`/${REPO}/resolve/${SHA}/tokenizer.json`, { status: 404, times: 1 });
  const gone = await rejection(downloadModel(REPO, opts(cache)));
  assert.equal(gone.status, 404);
  assert.match(gone.message, /file tokenizer\.json not found in tiny-org\/llama-tiny/);
  hub.faults.clear();
  await assert.rejects(lstat(path.join(cache, "models--tiny-org--llama-tiny", "snapshots", SHA, "tokenizer.json")));
});

test("500 is retried with backoff, then fails naming the server error; transient 500s recover", async () => {
  const cache = await tempCache();
  hub.faults.set(`/api/models/${REPO}/`, { status: 500 });
  const { result: e, urls } = await requestsDuring(() => captureStderr(() => downloadModel(REPO, opts(cache, { attempts: 3 }))));
  hub.faults.clear();
  assert.ok(e.error instanceof HubError);
  assert.equal(e.error.status, 500);
  assert.match(e.error.message, /HTTP 500.*server error.*3 attempts/);
  // Count the faulted endpoint only: a transfer of an earlier test may still be winding down on the shared server.
  assert.equal(urls.filter((u) => u.startsWith(`/api/models/${REPO}/`)).length, 3);
  assert.match(e.text, /retry 1\/2/);

  hub.faults.set(`/${REPO}/resolve/${SHA}/model.safetensors`, { status: 503, times: 2 });
  const ok = await captureStderr(() => downloadModel(REPO, opts(cache, { attempts: 3 })));
  hub.faults.clear();
  assert.equal(ok.error, undefined, String(ok.error));
  await assertBytes(path.join(ok.result!, "model.safetensors"), files["model.safetensors"]!);
});

test("network failure is a clear HubError", async () => {
  const dead = await startFakeHub({});
  const url = dead.url;
  await dead.close();
  const cache = await tempCache();
  const run = await captureStderr(() => downloadModel(REPO, { cacheDir: cache, hubUrl: url, progress: false, attempts: 2, retryDelayMs: 1 }));
  assert.ok(run.error instanceof HubError);
  assert.match(run.error.message, new RegExp(`cannot reach ${url.replace(/[.]/g, "\\.")}.*2 attempts`));
});

test("a transfer cut mid-body resumes with a Range request (or restarts) and yields the right bytes", async () => {
  const big = `/${REPO}/resolve/${SHA}/model.safetensors`;
  for (const ignoreRange of [false, true]) {
    const cache = await tempCache();
    hub.ignoreRange = ignoreRange;
    hub.faults.set(big, { cut: true, times: 1 });
    const n = hub.requests.length;
    const run = await captureStderr(() => downloadModel(REPO, opts(cache)));
    hub.faults.clear();
    hub.ignoreRange = false;
    assert.equal(run.error, undefined, String(run.error));
    await assertBytes(path.join(run.result!, "model.safetensors"), files["model.safetensors"]!);
    const tries = hub.requests.slice(n).filter((r) => r.url === big);
    assert.equal(tries.length, 2);
    assert.match(tries[1]!.range ?? "", /^bytes=[1-9]\d*-$/, "second try asks for the rest");
    assert.match(run.text, /transfer cut/);
    const blobs = await readdir(path.join(cache, "models--tiny-org--llama-tiny", "blobs"));
    assert.ok(!blobs.some((b) => b.endsWith(".incomplete")), blobs.join(" "));
  }
});

test("a partial file never appears in the snapshot; the next call resumes it", async () => {
  const cache = await tempCache();
  const big = `/${REPO}/resolve/${SHA}/model.safetensors`;
  const etag = sha256Hex(files["model.safetensors"]!);
  const folder = path.join(cache, "models--tiny-org--llama-tiny");
  hub.faults.set(big, { cut: true });
  const run = await captureStderr(() => downloadModel(REPO, opts(cache, { attempts: 2 })));
  hub.faults.clear();
  assert.ok(run.error instanceof HubError);
  assert.match(run.error.message, /model\.safetensors of tiny-org\/llama-tiny@main: transfer cut/);
  await assert.rejects(lstat(path.join(folder, "snapshots", SHA, "model.safetensors")), "no snapshot entry");
  await assert.rejects(lstat(path.join(folder, "blobs", etag)), "no complete blob");
  const partial = (await lstat(path.join(folder, "blobs", etag + ".incomplete"))).size;
  assert.ok(partial > 0 && partial < files["model.safetensors"]!.length, `partial ${partial}`);

  const n = hub.requests.length;
  const snap = await downloadModel(REPO, opts(cache));
  const tries = hub.requests.slice(n).filter((r) => r.url === big);
  assert.deepEqual(tries.map((r) => r.range), [`bytes=${partial}-`]);
  await assertBytes(path.join(snap, "model.safetensors"), files["model.safetensors"]!);
});

test("a sharded index fetches exactly the shards it lists", async () => {
  const cache = await tempCache();
  const { result: snap, urls } = await requestsDuring(() => downloadModel("tiny-org/sharded", opts(cache)));
  assert.deepEqual((await readdir(snap)).sort(), [
    "config.json",
    "model-00001-of-00002.safetensors",
    "model-00002-of-00002.safetensors",
    "model.safetensors.index.json",
  ]);
  assert.ok(!urls.some((u) => u.includes("consolidated")));
  await assertBytes(path.join(snap, "model-00002-of-00002.safetensors"), shard2);
  const again = await requestsDuring(() => downloadModel("tiny-org/sharded", opts(cache)));
  assert.deepEqual(again.urls, []);
  assert.equal((await downloadModel("tiny-org/sharded", { cacheDir: cache, offline: true })), snap);
});

test("pickles are never downloaded", async () => {
  const cache = await tempCache();
  const e = await rejection(downloadModel("tiny-org/bin-only", opts(cache)));
  assert.match(e.message, /only PyTorch pickle weights \(pytorch_model\.bin\)/);
  const { result: f, urls } = await requestsDuring(() => rejection(downloadModel(REPO, opts(cache, { files: ["pytorch_model.bin"] }))));
  assert.match(f.message, /never downloaded/);
  assert.deepEqual(urls, []);
  assert.ok(!hub.requests.some((r) => r.url.endsWith(".bin")));
});

test("model sources: existing paths win, path-like misses say no such folder, org/name is a repo id", async () => {
  const dir = await mkdtemp(path.join(HOME, "local-"));
  assert.equal(await resolveModelDir(dir), dir);
  await assert.rejects(resolveModelDir("./no/such/model"), /\.\/no\/such\/model: no such folder/);
  await assert.rejects(resolveModelDir("/no/such/model"), /no such folder/);
  await assert.rejects(resolveModelDir("~/vzt-no-such-model-xyz"), /no such folder/);
  await assert.rejects(resolveModelDir("a/b/c"), /no such folder, and not a Hub repo id/);
  await assert.rejects(resolveModelDir("llama"), /not a Hub repo id/);
  await assert.rejects(resolveModelDir(path.join(llama, "config.json")), /is a file, not a model folder/);

  const cwd = process.cwd();
  await mkdir(path.join(dir, "tiny-org", "llama-tiny"), { recursive: true });
  process.chdir(dir);
  try {
    const { result, urls } = await requestsDuring(() => resolveModelDir(REPO, opts(dir)));
    assert.equal(result, REPO, "an existing local folder wins over the repo id");
    assert.deepEqual(urls, []);
  } finally {
    process.chdir(cwd);
  }

  assert.deepEqual(parseRepoId("org/name"), { repo: "org/name" });
  assert.deepEqual(parseRepoId("org/name@refs/pr/1"), { repo: "org/name", revision: "refs/pr/1" });
  assert.equal(parseRepoId("org/na--me"), undefined);
  assert.equal(parseRepoId("org/name@"), undefined);
  assert.equal(parseRepoId("org"), undefined);
});
