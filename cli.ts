#!/usr/bin/env node
// `vzt <command>`: a name -> function table. Each command parses its flags and calls library functions.
import { parseArgs, type ParseArgsConfig } from "node:util";
import { COMMANDS } from "./commands.js";

function help(): string {
  const width = Math.max(...Object.keys(COMMANDS).map((n) => n.length));
  const lines = Object.entries(COMMANDS).map(([name, c]) => `  ${name.padEnd(width)}  ${c.summary}`);
  return [
    "vzt: VisionZip token compression, projector-only tuning and budget evaluation for LLaVA-style VLMs",
    "",
    "usage: vzt <command> [options]     (vzt <command> --help for its options)",
    "",
    "commands:",
    ...lines,
    "",
    "environment: VZT_BACKEND=auto|tensorflow|wasm|cpu, HF_TOKEN, HF_HUB_CACHE, HF_HOME, HF_HUB_OFFLINE=1, HF_ENDPOINT",
  ].join("\n");
}

async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (!name || name === "--help" || name === "-h" || name === "help") {
    console.log(help());
    return 0;
  }
  if (name === "--version" || name === "-v") {
    const { readFile } = await import("node:fs/promises");
    const pkg = JSON.parse(await readFile(new URL("../package.json", import.meta.url), "utf8")) as { version: string };
    console.log(pkg.version);
    return 0;
  }
  const cmd = COMMANDS[name];
  if (!cmd) {
    console.error(`vzt: unknown command "${name}"\n\n${help()}`);
    return 2;
  }
  const options = { help: { type: "boolean", short: "h" }, ...cmd.options } satisfies ParseArgsConfig["options"];
  let parsed: { values: Record<string, unknown>; positionals: string[] };
  try {
    parsed = parseArgs({ args: rest, options, allowPositionals: true, strict: true }) as typeof parsed;
  } catch (e) {
    console.error(`vzt ${name}: ${(e as Error).message}\n\n${cmd.usage}`);
    return 2;
  }
  if (parsed.values.help) {
    console.log(`${cmd.summary}\n\n${cmd.usage}`);
    return 0;
  }
  return (await cmd.run(parsed.values, parsed.positionals)) ?? 0;
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (e: unknown) => {
    const err = e as Error;
    console.error(`error: ${err.message}`);
    if (process.env.VZT_DEBUG) console.error(err.stack);
    process.exitCode = 1;
  },
);
