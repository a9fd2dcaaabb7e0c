// Preloaded into figure 9's child (`node --import <this file> dist/cli.js train ...`): when the process exits it
// writes its peak resident set size (getrusage maxrss, bytes) as JSON to the file named by VZT_BENCH_RSS_OUT.
import { writeFileSync } from "node:fs";

const out = process.env.VZT_BENCH_RSS_OUT;
if (out) {
  process.on("exit", (code) => {
    const u = process.resourceUsage();
    writeFileSync(out, JSON.stringify({ maxRssBytes: u.maxRSS * 1024, code, userSeconds: u.userCPUTime / 1e6, systemSeconds: u.systemCPUTime / 1e6 }));
  });
}
