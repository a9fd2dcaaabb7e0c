// A conversation (LLaVA JSON `from: human|gpt` or chat style `role: user|assistant`) and its tokenization into
// input ids + labels for training, following LLaVA's preprocess_multimodal / preprocess_v1 / preprocess_plain /
// tokenizer_image_token (haotian-liu/LLaVA llava/train/train.py, llava/mm_utils.py).
import { DataError } from "../core/errors.js";
import { buildPrompt, type TemplateName } from "./prompt.js";
import type { Tokenizer } from "./tokenizer.js";

/** LLaVA's image placeholder in text. */
export const DEFAULT_IMAGE_TOKEN = "<image>";
/** Id that stands for the image in inputIds (the model splices the image features in there). */
export const IMAGE_TOKEN_INDEX = -200;
/** Label of positions that are not trained. */
export const IGNORE_INDEX = -100;

/** A turn as found in data: `{from, value}` (LLaVA) or `{role, content}` (chat); either spelling of each works. */
export interface Message {
  from?: string;
  role?: string;
  value?: string;
  content?: string;
}

export interface Conversation {
  id?: string | number;
  /** Image path (relative to the image folder) or other reference; undefined for text-only samples. */
  image?: string;
  messages: Message[];
}

export type Role = "system" | "user" | "assistant";
export interface ChatMessage {
  role: Role;
  content: string;
}

const ROLES: Record<string, Role> = {
  human: "user",
  user: "user",
  gpt: "assistant",
  assistant: "assistant",
  system: "system",
};

function where(conv: Conversation): string {
  return conv.id !== undefined ? `conversation ${JSON.stringify(conv.id)}` : "conversation";
}

/** A LLaVA data record `{id, image?, conversations: [{from, value}]}` (or `{messages}`) as a Conversation. */
export function toConversation(rec: unknown, at = "record"): Conversation {
  if (rec === null || typeof rec !== "object" || Array.isArray(rec)) throw new DataError(`${at}: not a JSON object`);
  const r = rec as { id?: unknown; image?: unknown; conversations?: unknown; messages?: unknown };
  const turns = r.conversations ?? r.messages;
  if (!Array.isArray(turns)) throw new DataError(`${at}: no "conversations" (or "messages") list`, { column: "conversations" });
  const id = typeof r.id === "string" || typeof r.id === "number" ? r.id : undefined;
  if (r.image !== undefined && r.image !== null && typeof r.image !== "string") {
    throw new DataError(`${at}: "image" must be a string path`, { column: "image" });
  }
  return { id, image: typeof r.image === "string" ? r.image : undefined, messages: turns as Message[] };
}

/**
 * Roles and texts of a conversation, with LLaVA's preprocess_multimodal applied when it has an image: in every turn
 * that contains `<image>`, all `<image>` are removed, the text is stripped and one `<image>\n` goes in front. A
 * conversation with an `image` but no `<image>` anywhere gets `<image>\n` in front of its first user turn (as LLaVA's
 * eval scripts do).
 */
export function chatMessages(conv: Conversation): ChatMessage[] {
  if (!Array.isArray(conv.messages) || conv.messages.length === 0) throw new DataError(`${where(conv)}: no messages`);
  const out = conv.messages.map((m, i): ChatMessage => {
    const rawRole = m.from ?? m.role;
    const role = rawRole === undefined ? undefined : ROLES[rawRole];
    if (role === undefined) {
      throw new DataError(`${where(conv)}, message ${i}: unknown role ${JSON.stringify(rawRole)} (human/gpt/user/assistant/system)`);
    }
    const content = m.value ?? m.content;
    if (typeof content !== "string") throw new DataError(`${where(conv)}, message ${i}: no text ("value" or "content")`);
    return { role, content };
  });
  const anyImage = out.some((m) => m.content.includes(DEFAULT_IMAGE_TOKEN));
  for (const m of out) {
    if (m.content.includes(DEFAULT_IMAGE_TOKEN)) {
      m.content = (DEFAULT_IMAGE_TOKEN + "\n" + m.content.split(DEFAULT_IMAGE_TOKEN).join("").trim()).trim();
    }
  }
  if (conv.image !== undefined && !anyImage) {
    const first = out.find((m) => m.role === "user");
    if (first === undefined) throw new DataError(`${where(conv)}: has an image but no user turn to put it in`);
    first.content = DEFAULT_IMAGE_TOKEN + "\n" + first.content;
  }
  return out;
}

export interface TokenizeOptions {
  template: TemplateName;
  /** Longest inputIds (an image counts imageSeqLen positions). Longer samples are cut and flagged truncated. */
  maxLength?: number;
  /** Positions one image takes in the LLM sequence, for the maxLength budget (576 for LLaVA-1.5; default 1). */
  imageSeqLen?: number;
  /** Prompt up to and including the generation prompt ("ASSISTANT:"); a final assistant turn is dropped. */
  forGeneration?: boolean;
  /** Extra variables for a Jinja chat template. */
  templateVars?: Record<string, unknown>;
}

export interface TokenizedConversation {
  /** Token ids; IMAGE_TOKEN_INDEX (-200) where the image goes. */
  inputIds: number[];
  /** Same length: the id where trained, IGNORE_INDEX (-100) elsewhere (all -100 for forGeneration). */
  labels: number[];
  /** Indices of IMAGE_TOKEN_INDEX in inputIds. */
  imagePositions: number[];
  /** True when the sample was longer than maxLength (cut to fit, except for forGeneration, which is never cut). */
  truncated: boolean;
}

/** Length of the common prefix of two id lists. */
function commonPrefix(a: readonly number[], b: readonly number[]): number {
  const n = Math.min(a.length, b.length);
  let i = 0;
  while (i < n && a[i] === b[i]) i++;
  return i;
}

interface Part {
  text: string;
  train: boolean;
}

/**
 * Token boundaries of the parts of one text: ids = encode(whole text) and ends[k] = number of ids that belong to
 * parts 0..k. A boundary is the common prefix of encode(text up to the cut) and ids, so a token that straddles a cut
 * (or that only exists with what follows, like LLaMA's "▁" before a word) goes to the later part: "ASSISTANT:"
 * keeps its ":" and the reply starts at "▁reply", which is exactly LLaVA's "-2" in preprocess_v1.
 */
function alignByPrefixes(tok: Tokenizer, parts: readonly Part[], specials: boolean): { ids: number[]; ends: number[] } {
  const text = parts.map((p) => p.text).join("");
  const ids = tok.encode(text, { addSpecialTokens: specials });
  const ends: number[] = [];
  let offset = 0;
  let prev = 0;
  for (let k = 0; k < parts.length; k++) {
    offset += parts[k]!.text.length;
    let end = ids.length;
    if (k < parts.length - 1) end = commonPrefix(tok.encode(text.slice(0, offset), { addSpecialTokens: specials }), ids);
    prev = Math.max(prev, end);
    ends.push(prev);
  }
  return { ids, ends };
}

/**
 * Ids of one `<image>`-free chunk with the boundaries of its parts. Fast path: the chunk is cut where a part starts
 * or ends on an added token (e.g. after "</s>", before "<|im_start|>"), where the tokenizer splits anyway, and each
 * piece is aligned alone; the concatenation is checked against encode(whole chunk) and, if it differs, the whole
 * chunk is aligned by prefixes.
 */
function alignChunk(tok: Tokenizer, parts: readonly Part[], specials: boolean): { ids: number[]; ends: number[] } {
  const whole = tok.encode(parts.map((p) => p.text).join(""), { addSpecialTokens: specials });
  const added = tok.addedTokenContents.filter((t) => t.length > 0);
  const hardAfter = (k: number): boolean =>
    added.some((t) => parts[k]!.text.endsWith(t)) || (k + 1 < parts.length && added.some((t) => parts[k + 1]!.text.startsWith(t)));
  const ids: number[] = [];
  const ends: number[] = [];
  let start = 0;
  for (let k = 0; k < parts.length; k++) {
    if (k < parts.length - 1 && !hardAfter(k)) continue;
    const piece = alignByPrefixes(tok, parts.slice(start, k + 1), specials && start === 0);
    for (const e of piece.ends) ends.push(ids.length + e);
    ids.push(...piece.ids);
    start = k + 1;
  }
  if (ids.length === whole.length && commonPrefix(ids, whole) === whole.length) return { ids, ends };
  return alignByPrefixes(tok, parts, specials);
}

/**
 * Conversation -> input ids + labels. The prompt text comes from the template (see prompt.ts) as parts that are
 * trained or not; it is split on `<image>` and each chunk tokenized like LLaVA's tokenizer_image_token (BOS only at
 * the very start, IMAGE_TOKEN_INDEX in between), so the ids equal those of the whole prompt. Labels: IGNORE_INDEX on
 * BOS, images and untrained parts (system prompt, every "USER: ... ASSISTANT:"), the ids of trained parts (the
 * assistant reply + "</s>" for vicuna_v1; the caption + "\n" for plain).
 */
export function tokenizeConversation(conv: Conversation, tok: Tokenizer, opts: TokenizeOptions): TokenizedConversation {
  const prompt = buildPrompt(chatMessages(conv), tok, {
    template: opts.template,
    forGeneration: opts.forGeneration ?? false,
    hasImage: conv.image !== undefined,
    where: where(conv),
    templateVars: opts.templateVars,
  });
  const specials = prompt.addSpecialTokens;

  // Split the parts on <image>: chunks of parts, an image between consecutive chunks.
  const chunks: Part[][] = [[]];
  for (const seg of prompt.segments) {
    const pieces = seg.text.split(DEFAULT_IMAGE_TOKEN);
    pieces.forEach((text, i) => {
      if (i > 0) chunks.push([]);
      chunks[chunks.length - 1]!.push({ text, train: seg.train });
    });
  }

  const inputIds: number[] = [];
  const labels: number[] = [];
  const imagePositions: number[] = [];
  let startsWithBos = false;
  chunks.forEach((parts, c) => {
    if (c > 0) {
      imagePositions.push(inputIds.length);
      inputIds.push(IMAGE_TOKEN_INDEX);
      labels.push(IGNORE_INDEX);
    }
    const { ids, ends } = alignChunk(tok, parts, specials);
    let first = 0;
    if (c === 0) startsWithBos = specials && ids.length > 0 && ids[0] === tok.bosTokenId;
    else if (startsWithBos && ids[0] === tok.bosTokenId) first = 1; // tokenizer_image_token drops later chunks' BOS
    let k = 0;
    for (let i = first; i < ids.length; i++) {
      while (k < ends.length - 1 && i >= ends[k]!) k++;
      const bos = c === 0 && i === 0 && startsWithBos;
      inputIds.push(ids[i]!);
      labels.push(parts[k]!.train && !bos ? ids[i]! : IGNORE_INDEX);
    }
  });

  return truncate({ inputIds, labels, imagePositions, truncated: false }, opts);
}

/** Cuts to maxLength (images cost imageSeqLen each; an image that does not fit whole is dropped with the rest). */
function truncate(t: TokenizedConversation, opts: TokenizeOptions): TokenizedConversation {
  if (opts.maxLength === undefined) return t;
  const imageCost = opts.imageSeqLen ?? 1;
  let used = 0;
  let keep = 0;
  for (const id of t.inputIds) {
    const cost = id === IMAGE_TOKEN_INDEX ? imageCost : 1;
    if (used + cost > opts.maxLength) break;
    used += cost;
    keep++;
  }
  if (keep === t.inputIds.length) return t;
  if (opts.forGeneration) return { ...t, truncated: true };
  return {
    inputIds: t.inputIds.slice(0, keep),
    labels: t.labels.slice(0, keep),
    imagePositions: t.imagePositions.filter((p) => p < keep),
    truncated: true,
  };
}
