// Runs every compiled test file (dist/test/**/*.test.js) with node's built-in test runner.
// Usage: node scripts/run-tests.mjs [filter]   (filter: substring of the test file path)
import { readdirSync, statSync } from "node:fs";
import { join } from "node:path";
import { spawnSync } from "node:child_process";

function walk(dir) {
  const out = [];
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out.push(...walk(p));
    else if (name.endsWith(".test.js")) out.push(p);
  }
  return out;
}

const filter = process.argv[2];
const files = walk("dist/test").filter((f) => !filter || f.includes(filter)).sort();
if (files.length === 0) {
  console.error(`no test files found under dist/test${filter ? ` matching "${filter}"` : ""}`);
  process.exit(1);
}
// Two test files run at once, so each uses one wasm thread (VZT_THREADS) unless the caller says otherwise;
// test/core/wasm_threads.test.ts runs its own 1- and 2-thread children.
const env = { ...process.env, VZT_THREADS: process.env.VZT_THREADS ?? "1" };
const r = spawnSync(process.execPath, ["--test", "--test-concurrency=2", ...files], { stdio: "inherit", env });
process.exit(r.status ?? 1);
