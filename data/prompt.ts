// Prompt templates: LLaVA-1.5 `vicuna_v1` and `plain` (llava/conversation.py, llava/train/train.py) and the Jinja
// chat template of a tokenizer (@huggingface/jinja). A prompt is a list of text segments, each trained or not.
import { Template } from "@huggingface/jinja";
import { ConfigError, DataError } from "../core/errors.js";
import type { ChatMessage } from "./conversation.js";
import type { Tokenizer } from "./tokenizer.js";

export type TemplateName = "vicuna_v1" | "plain" | "chat_template";
export const TEMPLATE_NAMES: readonly TemplateName[] = ["vicuna_v1", "plain", "chat_template"];

/** lmms-eval's post-prompt for LLaVA-1.5 on VQAv2, GQA, POPE, TextVQA (also on the shapes training questions). */
export const SHORT_ANSWER_PROMPT = "Answer the question using a single word or phrase.";
/** conv_vicuna_v1.system in llava/conversation.py. */
export const VICUNA_V1_SYSTEM =
  "A chat between a curious user and an artificial intelligence assistant. " +
  "The assistant gives helpful, detailed, and polite answers to the user's questions.";
/** conv_vicuna_v1: roles, sep and sep2 (SeparatorStyle.TWO). */
export const VICUNA_V1 = { roles: ["USER", "ASSISTANT"], sep: " ", sep2: "</s>" } as const;
/** conv_llava_plain.sep. */
export const PLAIN_SEP = "\n";

export interface PromptSegment {
  text: string;
  /** True for text whose tokens are trained (assistant replies and their end-of-turn). */
  train: boolean;
}

export interface Prompt {
  segments: PromptSegment[];
  /** The whole prompt (concatenated segments). */
  text: string;
  /** Tokenize with the tokenizer's special tokens (BOS); false when the chat template writes bos_token itself. */
  addSpecialTokens: boolean;
}

export interface PromptOptions {
  template: TemplateName;
  /** Prompt for generation: ends with the generation prompt ("ASSISTANT:"); a final assistant turn is dropped. */
  forGeneration?: boolean;
  /** The sample has an image (plain requires one). */
  hasImage?: boolean;
  /** For error messages, e.g. `conversation "004539375"`. */
  where?: string;
  /** Extra variables for a Jinja chat template. */
  templateVars?: Record<string, unknown>;
}

/** Joins neighbouring segments with the same `train` flag and drops empty ones. */
function mergeSegments(segs: PromptSegment[]): PromptSegment[] {
  const out: PromptSegment[] = [];
  for (const s of segs) {
    if (s.text === "") continue;
    const last = out[out.length - 1];
    if (last && last.train === s.train) last.text += s.text;
    else out.push({ ...s });
  }
  return out;
}

/** For generation nothing is trained (earlier replies are context). */
function prompt(segs: PromptSegment[], addSpecialTokens: boolean, forGeneration: boolean): Prompt {
  const segments = mergeSegments(forGeneration ? segs.map((s) => ({ ...s, train: false })) : segs);
  return { segments, text: segments.map((s) => s.text).join(""), addSpecialTokens };
}

/** Splits off a leading system message and drops assistant turns before the first user turn (as preprocess_v1). */
function splitSystem(messages: readonly ChatMessage[], at: string): { system?: string; turns: ChatMessage[] } {
  let system: string | undefined;
  let turns = [...messages];
  if (turns[0]?.role === "system") {
    system = turns[0].content;
    turns = turns.slice(1);
  }
  const later = turns.findIndex((m) => m.role === "system");
  if (later >= 0) throw new DataError(`${at}: a system message is only allowed first (found one at turn ${later})`);
  while (turns[0]?.role === "assistant") turns = turns.slice(1);
  return { system, turns };
}

function checkAlternation(turns: readonly ChatMessage[], at: string): void {
  turns.forEach((m, i) => {
    const want = i % 2 === 0 ? "user" : "assistant";
    if (m.role !== want) throw new DataError(`${at}: turn ${i} is "${m.role}", expected "${want}" (turns must alternate)`);
  });
}

/**
 * LLaVA vicuna_v1 (SeparatorStyle.TWO): `{system} USER: {q} ASSISTANT: {a}</s>USER: ...`; for generation the prompt
 * ends with "ASSISTANT:". Trained: " {a}</s>" of every assistant turn (the cut after "ASSISTANT:" puts the space
 * with the reply, where LLaMA's "▁" joins it to the reply's first word).
 */
export function vicunaV1Segments(messages: readonly ChatMessage[], forGeneration: boolean, at = "conversation"): PromptSegment[] {
  const { system, turns: all } = splitSystem(messages, at);
  const turns = forGeneration && all[all.length - 1]?.role === "assistant" ? all.slice(0, -1) : all;
  checkAlternation(turns, at);
  const [USER, ASSISTANT] = VICUNA_V1.roles;
  const segs: PromptSegment[] = [{ text: (system ?? VICUNA_V1_SYSTEM) + VICUNA_V1.sep, train: false }];
  turns.forEach((m, i) => {
    const sep = i % 2 === 0 ? VICUNA_V1.sep : VICUNA_V1.sep2;
    if (m.role === "user") {
      // Conversation.get_prompt: a falsy (empty) message renders as "ROLE:" with no separator.
      segs.push({ text: m.content ? `${USER}: ${m.content}${sep}` : `${USER}:`, train: false });
    } else if (m.content) {
      segs.push({ text: `${ASSISTANT}:`, train: false }, { text: ` ${m.content}${sep}`, train: true });
    } else {
      segs.push({ text: `${ASSISTANT}:`, train: false });
    }
  });
  if (forGeneration) segs.push({ text: `${ASSISTANT}:`, train: false });
  return segs;
}

/**
 * LLaVA plain (pretraining, preprocess_plain): `<image>{caption}\n`; the question text is dropped and only the
 * caption + "\n" is trained. Needs exactly one user turn with the image and one assistant turn.
 */
export function plainSegments(
  messages: readonly ChatMessage[],
  forGeneration: boolean,
  hasImage: boolean,
  at = "conversation",
): PromptSegment[] {
  const turns = messages.filter((m) => m.role !== "system");
  const user = turns[0];
  if (!user || user.role !== "user") throw new DataError(`${at}: plain template needs a user turn first`);
  if (!hasImage && !user.content.includes("<image>")) {
    throw new DataError(`${at}: plain template needs an image (no "image" and no <image> in the user turn)`);
  }
  if (forGeneration) return [{ text: "<image>", train: false }];
  if (turns.length !== 2 || turns[1]!.role !== "assistant") {
    throw new DataError(`${at}: plain template needs exactly one user turn and one assistant caption, got ${turns.length} turns`);
  }
  return [
    { text: "<image>", train: false },
    { text: turns[1]!.content + PLAIN_SEP, train: true },
  ];
}

const compiled = new Map<string, Template>();
function compile(source: string): Template {
  let t = compiled.get(source);
  if (!t) {
    try {
      t = new Template(source);
    } catch (e) {
      throw new ConfigError([`chat template does not parse: ${(e as Error).message}`]);
    }
    compiled.set(source, t);
  }
  return t;
}

/** True when the template reads message content as a list of {type: "image"|"text"} items (llava-hf style). */
export function usesContentList(template: string): boolean {
  return /\[\s*['"]type['"]\s*\]|\.type\b|['"]type['"]/.test(template);
}

/** A message as the template wants it: string content, or [{type: "image"}..., {type: "text", text}] for list templates. */
function templateMessage(m: ChatMessage, list: boolean): Record<string, unknown> {
  if (!list) return { role: m.role, content: m.content };
  const images = m.content.split("<image>").length - 1;
  const text = m.content.split("<image>").join("").trim();
  const content: Record<string, unknown>[] = [];
  for (let i = 0; i < images; i++) content.push({ type: "image" });
  content.push({ type: "text", text });
  return { role: m.role, content };
}

export interface ChatTemplateOptions {
  addGenerationPrompt?: boolean;
  bosToken?: string;
  eosToken?: string;
  padToken?: string;
  unkToken?: string;
  vars?: Record<string, unknown>;
}

/** Renders a Jinja chat template like transformers' apply_chat_template(tokenize=False). */
export function renderChatTemplate(template: string, messages: readonly ChatMessage[], opts: ChatTemplateOptions = {}): string {
  const list = usesContentList(template);
  try {
    return compile(template).render({
      ...opts.vars,
      messages: messages.map((m) => templateMessage(m, list)),
      add_generation_prompt: opts.addGenerationPrompt ?? false,
      bos_token: opts.bosToken ?? "",
      eos_token: opts.eosToken ?? "",
      pad_token: opts.padToken ?? "",
      unk_token: opts.unkToken ?? "",
    });
  } catch (e) {
    if (e instanceof ConfigError) throw e;
    throw new DataError(`chat template failed to render: ${(e as Error).message}`);
  }
}

/**
 * Segments of a Jinja chat template: the text of assistant turn k is what rendering turns 0..k adds to rendering
 * turns 0..k-1 with the generation prompt (so "<|im_start|>assistant\n" is masked and "{reply}<|im_end|>\n" is
 * trained for Qwen2). Templates whose renderings are not prefixes of each other are refused.
 */
export function chatTemplateSegments(
  template: string,
  messages: readonly ChatMessage[],
  tok: Pick<Tokenizer, "bosToken" | "eosToken" | "padToken" | "unkToken">,
  forGeneration: boolean,
  vars: Record<string, unknown> = {},
  at = "conversation",
): PromptSegment[] {
  const { system, turns: all } = splitSystem(messages, at);
  const head: ChatMessage[] = system !== undefined ? [{ role: "system", content: system }] : [];
  const turns = forGeneration && all[all.length - 1]?.role === "assistant" ? all.slice(0, -1) : all;
  const base = { bosToken: tok.bosToken, eosToken: tok.eosToken, padToken: tok.padToken, unkToken: tok.unkToken, vars };
  const render = (n: number, gen: boolean): string =>
    renderChatTemplate(template, [...head, ...turns.slice(0, n)], { ...base, addGenerationPrompt: gen });
  if (forGeneration) return [{ text: render(turns.length, true), train: false }];
  const full = render(turns.length, false);
  const segs: PromptSegment[] = [];
  let done = 0;
  turns.forEach((m, k) => {
    if (m.role !== "assistant") return;
    const before = render(k, true);
    const after = render(k + 1, false);
    if (!after.startsWith(before) || !full.startsWith(after) || before.length < done) {
      throw new DataError(`${at}: the chat template's rendering of turn ${k} is not a prefix of the whole conversation; cannot mask it`);
    }
    segs.push({ text: full.slice(done, before.length), train: false }, { text: full.slice(before.length, after.length), train: true });
    done = after.length;
  });
  segs.push({ text: full.slice(done), train: false });
  return segs;
}

/** The prompt of a conversation under a template, as trained / untrained segments. */
export function buildPrompt(messages: readonly ChatMessage[], tok: Tokenizer, opts: PromptOptions): Prompt {
  const at = opts.where ?? "conversation";
  const gen = opts.forGeneration ?? false;
  switch (opts.template) {
    case "vicuna_v1":
      return prompt(vicunaV1Segments(messages, gen, at), true, gen);
    case "plain":
      return prompt(plainSegments(messages, gen, opts.hasImage ?? false, at), true, gen);
    case "chat_template": {
      const t = tok.chatTemplate;
      if (t === undefined) {
        throw new ConfigError([`template "chat_template": the tokenizer in ${tok.dir} has no chat template (tokenizer_config.json chat_template, chat_template.json or chat_template.jinja)`]);
      }
      const segs = chatTemplateSegments(t, messages, tok, gen, opts.templateVars, at);
      return prompt(segs, !t.includes("bos_token"), gen);
    }
    default:
      throw new ConfigError([`template: unknown "${String(opts.template)}" (one of ${TEMPLATE_NAMES.join(", ")})`]);
  }
}
