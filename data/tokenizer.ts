// Text tokenizer of a model folder: tokenizer.json (or vocab.json + merges.txt) + tokenizer_config.json, through
// @huggingface/tokenizers, behind a small wrapper with the special-token ids and the chat template.
import { existsSync } from "node:fs";
import { readFile } from "node:fs/promises";
import path from "node:path";
import { Tokenizer as HfTokenizer } from "@huggingface/tokenizers";
import { WeightsError } from "../core/errors.js";
import { resolveModelDir } from "../models/hub.js";

export interface EncodeOptions {
  /** Add the tokenizer's special tokens (LLaMA: BOS `<s>` in front). Default true, as `tokenizer(text)` in HF. */
  addSpecialTokens?: boolean;
}
export interface DecodeOptions {
  /** Drop special tokens (`<s>`, `</s>`, `<image>`, ...). Default false. */
  skipSpecialTokens?: boolean;
}

/** One added token, from tokenizer_config.json `added_tokens_decoder` or added_tokens.json. */
export interface AddedTokenInfo {
  id: number;
  content: string;
  special: boolean;
  lstrip: boolean;
  rstrip: boolean;
  normalized: boolean;
  single_word: boolean;
}

/** What tokenizer_config.json / special_tokens_map.json / chat template files say, without the vocabulary. */
export interface TokenizerConfigInfo {
  dir: string;
  tokenizerClass?: string;
  bosToken?: string;
  eosToken?: string;
  padToken?: string;
  unkToken?: string;
  /** `image_token` (llava-hf), also under `extra_special_tokens` / `model_specific_special_tokens`. */
  imageToken?: string;
  addBosToken?: boolean;
  addEosToken?: boolean;
  chatTemplate?: string;
  /** undefined when absent or the "no limit" sentinel (1e30) that transformers writes. */
  modelMaxLength?: number;
  paddingSide?: "left" | "right";
  addedTokens: AddedTokenInfo[];
  /** Which files were found (names relative to dir). */
  files: string[];
  /** tokenizer_config.json as read ({} when absent). */
  raw: Record<string, unknown>;
}

export interface Tokenizer {
  readonly dir: string;
  readonly config: TokenizerConfigInfo;
  encode(text: string, opts?: EncodeOptions): number[];
  decode(ids: readonly number[], opts?: DecodeOptions): string;
  tokenToId(token: string): number | undefined;
  idToToken(id: number): string | undefined;
  /** Largest id + 1, added tokens included (HF `len(tokenizer)`): 32002 for llava-1.5-7b-hf, 151665 for Qwen2.5. */
  readonly vocabSize: number;
  readonly bosTokenId: number | undefined;
  readonly eosTokenId: number | undefined;
  readonly padTokenId: number | undefined;
  readonly unkTokenId: number | undefined;
  readonly bosToken: string | undefined;
  readonly eosToken: string | undefined;
  readonly padToken: string | undefined;
  readonly unkToken: string | undefined;
  /** True when encode(text, {addSpecialTokens: true}) puts BOS in front (LLaMA yes, Qwen2 no). */
  readonly addsBos: boolean;
  /** Jinja chat template (tokenizer_config.json `chat_template`, chat_template.json or chat_template.jinja). */
  readonly chatTemplate: string | undefined;
  /** "<image>" when it is a token of the vocabulary, else undefined. */
  readonly imageToken: string | undefined;
  /** Contents of all added tokens (special or not): the tokenizer splits text on them before anything else. */
  readonly addedTokenContents: readonly string[];
}

const TOKENIZER_FILES = [
  "tokenizer.json",
  "vocab.json",
  "merges.txt",
  "tokenizer.model",
  "tokenizer_config.json",
  "special_tokens_map.json",
  "added_tokens.json",
  "chat_template.json",
  "chat_template.jinja",
];

/** Qwen2Tokenizer's PRETOKENIZE_REGEX (transformers tokenization_qwen2.py), in the Oniguruma syntax of tokenizer.json. */
export const QWEN2_SPLIT_REGEX = String.raw`(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`;

/** transformers writes this for "no limit" in model_max_length. */
const NO_MAX_LENGTH = 1e29;

async function readJsonFile(file: string): Promise<unknown> {
  let text: string;
  try {
    text = await readFile(file, "utf8");
  } catch (e) {
    throw new WeightsError(`cannot read ${path.basename(file)} (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`, file);
  }
  try {
    return JSON.parse(text) as unknown;
  } catch (e) {
    throw new WeightsError(`${file}: not valid JSON: ${(e as Error).message}`, file);
  }
}

async function readJsonObject(file: string): Promise<Record<string, unknown>> {
  const j = await readJsonFile(file);
  if (j === null || typeof j !== "object" || Array.isArray(j)) throw new WeightsError(`${file}: not a JSON object`, file);
  return j as Record<string, unknown>;
}

/** A special token as written in the configs: "<s>", {content: "<s>", ...} or {__type: "AddedToken", content}. */
function tokenContent(v: unknown): string | undefined {
  if (typeof v === "string") return v;
  if (v !== null && typeof v === "object" && typeof (v as { content?: unknown }).content === "string") {
    return (v as { content: string }).content;
  }
  return undefined;
}

function bool(v: unknown): boolean | undefined {
  return typeof v === "boolean" ? v : undefined;
}

/** tokenizer_config `chat_template`: a string, or a list of {name, template} (the "default" one is taken). */
function templateOf(v: unknown): string | undefined {
  if (typeof v === "string") return v;
  if (Array.isArray(v)) {
    const named = v as { name?: unknown; template?: unknown }[];
    const pick = named.find((t) => t.name === "default") ?? named[0];
    return typeof pick?.template === "string" ? pick.template : undefined;
  }
  return undefined;
}

function addedTokenFrom(id: number, v: Record<string, unknown>): AddedTokenInfo {
  return {
    id,
    content: String(v.content),
    special: v.special === true,
    lstrip: v.lstrip === true,
    rstrip: v.rstrip === true,
    normalized: v.normalized === true,
    single_word: v.single_word === true,
  };
}

/**
 * Reads the tokenizer configuration of a model folder (no vocabulary needed). special_tokens_map.json overrides
 * tokenizer_config.json for bos/eos/pad/unk, as in transformers' from_pretrained.
 */
export async function loadTokenizerConfig(source: string): Promise<TokenizerConfigInfo> {
  const dir = await resolveModelDir(source);
  const files = TOKENIZER_FILES.filter((f) => existsSync(path.join(dir, f)));
  if (!files.some((f) => f === "tokenizer.json" || f === "tokenizer_config.json" || f === "vocab.json")) {
    throw new WeightsError(`${dir}: no tokenizer files (looked for tokenizer.json, tokenizer_config.json, vocab.json)`, dir);
  }
  const raw = files.includes("tokenizer_config.json") ? await readJsonObject(path.join(dir, "tokenizer_config.json")) : {};
  const map = files.includes("special_tokens_map.json")
    ? await readJsonObject(path.join(dir, "special_tokens_map.json"))
    : {};
  const special = (key: string): string | undefined => tokenContent(map[key]) ?? tokenContent(raw[key]);

  const extra = (raw.extra_special_tokens ?? {}) as Record<string, unknown>;
  const modelSpecific = (raw.model_specific_special_tokens ?? {}) as Record<string, unknown>;
  const imageToken = tokenContent(raw.image_token) ?? tokenContent(extra.image_token) ?? tokenContent(modelSpecific.image_token);

  let addedTokens: AddedTokenInfo[] = [];
  const decoder = raw.added_tokens_decoder;
  if (decoder !== null && typeof decoder === "object") {
    addedTokens = Object.entries(decoder as Record<string, Record<string, unknown>>).map(([id, v]) => {
      const n = Number(id);
      if (!Number.isInteger(n) || typeof v?.content !== "string") {
        throw new WeightsError(`${path.join(dir, "tokenizer_config.json")}: added_tokens_decoder["${id}"] is malformed`);
      }
      return addedTokenFrom(n, v);
    });
  } else if (files.includes("added_tokens.json")) {
    // Older layout: {content: id}; a token is special when special_tokens_map names it.
    const specials = new Set<string>();
    for (const v of Object.values(map)) {
      for (const t of Array.isArray(v) ? v : [v]) {
        const c = tokenContent(t);
        if (c !== undefined) specials.add(c);
      }
    }
    const added = await readJsonObject(path.join(dir, "added_tokens.json"));
    addedTokens = Object.entries(added).map(([content, id]) => {
      if (typeof id !== "number") throw new WeightsError(`${path.join(dir, "added_tokens.json")}: "${content}" has no integer id`);
      return addedTokenFrom(id, { content, special: specials.has(content) });
    });
  }
  addedTokens.sort((a, b) => a.id - b.id);

  let chatTemplate: string | undefined;
  if (files.includes("chat_template.jinja")) {
    chatTemplate = await readFile(path.join(dir, "chat_template.jinja"), "utf8");
  } else if (files.includes("chat_template.json")) {
    const file = path.join(dir, "chat_template.json");
    chatTemplate = templateOf((await readJsonObject(file)).chat_template);
    if (chatTemplate === undefined) throw new WeightsError(`${file}: no "chat_template" string`, file);
  } else {
    chatTemplate = templateOf(raw.chat_template);
  }

  const maxLen = raw.model_max_length;
  const side = raw.padding_side;
  return {
    dir,
    tokenizerClass: typeof raw.tokenizer_class === "string" ? raw.tokenizer_class : undefined,
    bosToken: special("bos_token"),
    eosToken: special("eos_token"),
    padToken: special("pad_token"),
    unkToken: special("unk_token"),
    imageToken,
    addBosToken: bool(raw.add_bos_token),
    addEosToken: bool(raw.add_eos_token),
    chatTemplate,
    modelMaxLength: typeof maxLen === "number" && maxLen < NO_MAX_LENGTH ? maxLen : undefined,
    paddingSide: side === "left" || side === "right" ? side : undefined,
    addedTokens,
    files,
    raw,
  };
}

/**
 * tokenizer.json equivalent of a byte-level BPE given as vocab.json + merges.txt (GPT-2 / Qwen2 "slow" files),
 * built in memory because the folder has no tokenizer.json. For Qwen2Tokenizer it is what
 * `Qwen2TokenizerFast.from_pretrained` converts to: NFC normalizer, Split on the Qwen2 regex (Isolated), then
 * ByteLevel without its own regex; ByteLevel decoder; BPE without unk/byte-fallback; the added tokens of
 * tokenizer_config.json. Other classes get the GPT-2 layout (ByteLevel pre-tokenizer with its built-in regex).
 */
export function byteLevelBpeJson(
  vocab: Record<string, number>,
  mergesTxt: string,
  cfg: Pick<TokenizerConfigInfo, "tokenizerClass" | "unkToken" | "addedTokens" | "raw">,
): Record<string, unknown> {
  const merges: [string, string][] = [];
  for (const line of mergesTxt.split("\n")) {
    if (line.startsWith("#version") || line.trim() === "") continue;
    const parts = line.replace(/\r$/, "").split(" ");
    if (parts.length !== 2) throw new WeightsError(`merges.txt: line "${line}" is not "a b"`);
    merges.push([parts[0]!, parts[1]!]);
  }
  const qwen = (cfg.tokenizerClass ?? "").startsWith("Qwen2");
  const addPrefixSpace = cfg.raw.add_prefix_space === true;
  const byteLevel = { type: "ByteLevel", add_prefix_space: addPrefixSpace, trim_offsets: false, use_regex: !qwen };
  return {
    version: "1.0",
    added_tokens: cfg.addedTokens,
    normalizer: qwen ? { type: "NFC" } : null,
    pre_tokenizer: qwen
      ? {
          type: "Sequence",
          pretokenizers: [
            { type: "Split", pattern: { Regex: QWEN2_SPLIT_REGEX }, behavior: "Isolated", invert: false },
            { ...byteLevel, use_regex: false },
          ],
        }
      : byteLevel,
    post_processor: { ...byteLevel },
    decoder: { ...byteLevel },
    model: {
      type: "BPE",
      dropout: null,
      unk_token: qwen ? null : (cfg.unkToken ?? null),
      continuing_subword_prefix: "",
      end_of_word_suffix: "",
      fuse_unk: false,
      byte_fallback: false,
      ignore_merges: false,
      vocab,
      merges,
    },
  };
}

class HfBackedTokenizer implements Tokenizer {
  readonly vocabSize: number;
  readonly bosTokenId: number | undefined;
  readonly eosTokenId: number | undefined;
  readonly padTokenId: number | undefined;
  readonly unkTokenId: number | undefined;
  readonly addsBos: boolean;
  readonly imageToken: string | undefined;
  readonly addedTokenContents: readonly string[];

  constructor(
    readonly dir: string,
    readonly config: TokenizerConfigInfo,
    private readonly hf: HfTokenizer,
  ) {
    let maxId = -1;
    for (const id of hf.get_vocab(true).values()) if (id > maxId) maxId = id;
    this.vocabSize = maxId + 1;
    const idOf = (t: string | undefined): number | undefined => (t === undefined ? undefined : hf.token_to_id(t));
    this.bosTokenId = idOf(config.bosToken);
    this.eosTokenId = idOf(config.eosToken);
    this.padTokenId = idOf(config.padToken);
    this.unkTokenId = idOf(config.unkToken);
    const probe = hf.encode("a", { add_special_tokens: true }).ids;
    this.addsBos = this.bosTokenId !== undefined && probe[0] === this.bosTokenId;
    this.imageToken = hf.token_to_id("<image>") !== undefined ? "<image>" : undefined;
    this.addedTokenContents = [...hf.get_added_tokens_decoder().values()].map((t) => t.content);
  }

  get bosToken(): string | undefined {
    return this.config.bosToken;
  }
  get eosToken(): string | undefined {
    return this.config.eosToken;
  }
  get padToken(): string | undefined {
    return this.config.padToken;
  }
  get unkToken(): string | undefined {
    return this.config.unkToken;
  }
  get chatTemplate(): string | undefined {
    return this.config.chatTemplate;
  }

  encode(text: string, opts: EncodeOptions = {}): number[] {
    return this.hf.encode(text, { add_special_tokens: opts.addSpecialTokens ?? true }).ids;
  }

  decode(ids: readonly number[], opts: DecodeOptions = {}): string {
    if (ids.length === 0) return "";
    for (let i = 0; i < ids.length; i++) {
      const id = ids[i]!;
      if (!Number.isInteger(id) || id < 0 || id >= this.vocabSize) {
        throw new RangeError(`${this.dir}: decode: ids[${i}] = ${id} is not a token id (0..${this.vocabSize - 1})`);
      }
    }
    return this.hf.decode([...ids], { skip_special_tokens: opts.skipSpecialTokens ?? false });
  }

  tokenToId(token: string): number | undefined {
    return this.hf.token_to_id(token);
  }

  idToToken(id: number): string | undefined {
    return this.hf.id_to_token(id);
  }
}

/**
 * Loads the tokenizer of a model folder (or Hub id, via resolveModelDir). Needs tokenizer.json, or vocab.json +
 * merges.txt (byte-level BPE, e.g. Qwen2); a folder with only tokenizer.model (SentencePiece) or only configs fails
 * with a WeightsError that names the missing files.
 */
export async function loadTokenizer(source: string): Promise<Tokenizer> {
  const cfg = await loadTokenizerConfig(source);
  const dir = cfg.dir;
  let json: Record<string, unknown>;
  if (cfg.files.includes("tokenizer.json")) {
    json = await readJsonObject(path.join(dir, "tokenizer.json"));
  } else if (cfg.files.includes("vocab.json") && cfg.files.includes("merges.txt")) {
    const vocab = await readJsonObject(path.join(dir, "vocab.json"));
    for (const [tok, id] of Object.entries(vocab)) {
      if (typeof id !== "number") throw new WeightsError(`${path.join(dir, "vocab.json")}: "${tok}" has no integer id`);
    }
    const merges = await readFile(path.join(dir, "merges.txt"), "utf8");
    json = byteLevelBpeJson(vocab as Record<string, number>, merges, cfg);
  } else {
    const found = cfg.files.length ? cfg.files.join(", ") : "nothing";
    const spm = cfg.files.includes("tokenizer.model")
      ? " (tokenizer.model is a SentencePiece model, which is not supported: convert it with transformers' save_pretrained to get tokenizer.json)"
      : "";
    throw new WeightsError(
      `${dir}: missing tokenizer.json (or vocab.json + merges.txt); found only ${found}${spm}. ` +
        `Use loadTokenizerConfig() for the special tokens and chat template alone.`,
      path.join(dir, "tokenizer.json"),
    );
  }
  let hf: HfTokenizer;
  try {
    // The config fields that tokenizers.js reads: clean_up_tokenization_spaces, additional_special_tokens, ...
    const extraSpecials = Array.isArray(cfg.raw.additional_special_tokens) ? cfg.raw.additional_special_tokens : [];
    const additional = extraSpecials.map(tokenContent).filter((t): t is string => t !== undefined);
    hf = new HfTokenizer(
      { added_tokens: [], ...json },
      { ...cfg.raw, additional_special_tokens: additional },
    );
  } catch (e) {
    throw new WeightsError(`${dir}: cannot build the tokenizer: ${(e as Error).message}`, dir);
  }
  return new HfBackedTokenizer(dir, cfg, hf);
}
