// `${key.path}`, `${env:NAME}` and `${env:NAME,default}` references inside config strings, resolved after `extends`
// and `--set` and before validation. A string that is exactly one reference takes the referenced value's type
// (`${train.max_steps}` stays a number); inside a longer string the value is spliced in as text. `$${` writes a
// literal `${`. A key that is not written anywhere resolves to its schema default.
import YAML from "yaml";
import { isMapping, show } from "./dsl.js";
import type { Raw } from "./layers.js";

export interface RefOptions {
  env: Readonly<Record<string, string | undefined>>;
  /** The schema default of a key path not present in the config (undefined: no default). */
  defaultOf(key: string): { value: unknown } | undefined;
  /** Key paths the schema knows, for a did-you-mean on a bad reference. */
  suggest(key: string): string | undefined;
  report(key: string, message: string): void;
}

const TOKEN = /\$\$\{|\$\{([^}]*)\}/g;
const WHOLE = /^\$\{([^}]*)\}$/;
const REF_KEY = /^[A-Za-z_][A-Za-z0-9_-]*(\.[A-Za-z_][A-Za-z0-9_-]*)*$/;
const FAILED = Symbol("unresolved");

/** Escapes `${` as `$${` so a resolved string survives another load unchanged. */
export function escapeRefs(s: string): string {
  return s.replace(/\$\{/g, "$$${");
}

/**
 * A copy of `raw` with every reference resolved. Keys whose references fail are reported (or, when they only
 * depend on a failed key, just listed in `failed`) and left as written.
 */
export function resolveRefs(raw: Raw, opts: RefOptions): { raw: Raw; failed: Set<string> } {
  const done = new Map<string, unknown>();
  const failed = new Set<string>();

  /** The raw value at a key path; list items are addressed as `a.b[0].c` (mappings inside lists included). */
  const valueAt = (key: string): unknown => {
    let node: unknown = raw;
    for (const part of key.split(".")) {
      const [, name, indices] = /^([^[]*)((?:\[\d+\])*)$/.exec(part) ?? [undefined, part, ""];
      node = isMapping(node) ? node[name!] : undefined;
      for (const m of indices!.matchAll(/\[(\d+)\]/g)) node = Array.isArray(node) ? (node[Number(m[1])] as unknown) : undefined;
    }
    return node;
  };

  const resolveKey = (key: string, stack: readonly string[]): unknown => {
    if (done.has(key)) return done.get(key);
    const v = resolve(valueAt(key), key, stack);
    done.set(key, v);
    return v;
  };

  const lookup = (ref: string, at: string, stack: readonly string[]): unknown => {
    const env = /^env:([^,]+)(?:,(.*))?$/.exec(ref.trim());
    if (env) {
      const name = env[1]!.trim();
      const v = opts.env[name] ?? env[2];
      if (v === undefined) return fail(at, `\${${ref}}: environment variable ${name} is not set (give a default: \${env:${name},VALUE})`);
      return v;
    }
    const key = ref.trim();
    if (!REF_KEY.test(key)) return fail(at, `\${${ref}}: expected a key path like \${output_dir} or \${env:NAME}`);
    const from = stack.findIndex((s) => s === key || s.startsWith(key + "."));
    if (from >= 0) return fail(at, `\${${ref}}: reference cycle ${[...stack.slice(from), key].join(" -> ")}`);
    if (valueAt(key) !== undefined) {
      const v = resolveKey(key, [...stack, key]);
      if (![...failed].some((f) => f === key || f.startsWith(key + ".") || f.startsWith(key + "["))) {
        return v !== null && typeof v === "object" ? structuredClone(v) : v;
      }
      failed.add(at); // the cause is reported at the key that failed
      return FAILED;
    }
    const d = opts.defaultOf(key);
    if (d !== undefined) return d.value;
    const near = opts.suggest(key);
    return fail(at, `\${${ref}}: no key ${key} in this config${near ? `; did you mean \${${near}}?` : ""}`);
  };

  const fail = (at: string, message: string): typeof FAILED => {
    failed.add(at);
    opts.report(at, message);
    return FAILED;
  };

  const resolveString = (s: string, key: string, stack: readonly string[]): unknown => {
    const whole = WHOLE.exec(s);
    if (whole) {
      const v = lookup(whole[1]!, key, stack);
      if (v === FAILED) return s;
      // An env value is text: read it as a YAML scalar, like a --set value.
      return whole[1]!.trim().startsWith("env:") ? parseScalar(v as string) : v;
    }
    let broken = false;
    const out = s.replace(TOKEN, (m, ref: string | undefined) => {
      if (ref === undefined) return "${"; // $${ escape
      const v = lookup(ref, key, stack);
      if (v === FAILED) return (broken = true), m;
      if (v === null || typeof v === "object") {
        broken = true;
        fail(key, `\${${ref}}: is ${show(v)}; only a whole-string reference can take null, a mapping or a list`);
        return m;
      }
      return String(v);
    });
    return broken ? s : out;
  };

  const resolve = (v: unknown, key: string, stack: readonly string[]): unknown => {
    if (typeof v === "string") return v.includes("${") ? resolveString(v, key, stack) : v;
    if (Array.isArray(v)) return v.map((x, i) => resolve(x, `${key}[${i}]`, stack));
    if (isMapping(v)) {
      const out: Raw = {};
      for (const k of Object.keys(v)) {
        const sub = key ? `${key}.${k}` : k;
        out[k] = resolveKey(sub, [...stack, sub]);
      }
      return out;
    }
    return v;
  };

  return { raw: resolve(raw, "", []) as Raw, failed };
}

function parseScalar(text: string): unknown {
  try {
    return YAML.parse(text) as unknown;
  } catch {
    return text;
  }
}
