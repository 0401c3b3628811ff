// A model's tokenizer and chat template: tokenizer.json through @huggingface/tokenizers (the pure-JS port
// of Hugging Face tokenizers that transformers.js uses), tokenizer_config.json for the special tokens and
// the chat template, rendered by @huggingface/jinja.
//
// Chat examples become token ids plus a loss mask over the assistant turns, with the semantics of TRL's
// assistant-only loss: for each assistant message, the tokens after the generation prompt (e.g.
// "<|im_start|>assistant\n", which is not learned) up to and including the turn's end-of-turn token
// (e.g. "<|im_end|>", which is learned: it is how the model learns to stop). Template text after the
// end-of-turn token (ChatML's "\n") is not learned. The spans are found by rendering prefixes of the
// conversation through the model's own template and diffing their tokens against the whole, so any
// template that renders history stably works, without {% generation %} markers.
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { Tokenizer } from '@huggingface/tokenizers';
import { Template } from '@huggingface/jinja';
import { z } from 'zod';
import type { ChatRenderer, RenderedExample, TokenCounter } from '../data/tokens.js';
import { ModelFileError, parseModelFile } from './errors.js';

/** A chat message as chat templates see it (extra fields such as tool_calls pass through). */
export interface ChatMessage {
  role: string;
  content: string;
  [key: string]: unknown;
}

export interface LoadTokenizerOptions {
  /** a chat template that replaces the model's own */
  chatTemplate?: string;
  /** variables for every template render, e.g. { enable_thinking: false } for Qwen3 */
  templateVariables?: Record<string, unknown>;
}

export interface EncodeOptions {
  /** add the model's BOS/EOS as its tokenizer does for plain text (default true) */
  addSpecialTokens?: boolean;
}

export interface DecodeOptions {
  skipSpecialTokens?: boolean;
  /** default: tokenizer_config.json's clean_up_tokenization_spaces */
  cleanUpTokenizationSpaces?: boolean;
}

export interface TemplateOptions {
  addGenerationPrompt?: boolean;
  /** extra template variables for this render */
  variables?: Record<string, unknown>;
}

export class ChatTemplateError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ChatTemplateError';
  }
}

/** The ChatML template (Qwen2, SmolLM2 style without a default system prompt); the tiny models use it. */
export const CHATML_TEMPLATE =
  "{%- for message in messages %}{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}{%- endfor %}" +
  "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}";

const SpecialToken = z.union([z.string(), z.looseObject({ content: z.string() }), z.null()]).optional();
const TemplateEntry = z.looseObject({ name: z.string(), template: z.string() });
const TokenizerConfig = z.looseObject({
  bos_token: SpecialToken,
  eos_token: SpecialToken,
  pad_token: SpecialToken,
  unk_token: SpecialToken,
  add_bos_token: z.boolean().nullish(),
  add_eos_token: z.boolean().nullish(),
  clean_up_tokenization_spaces: z.boolean().nullish(),
  chat_template: z.union([z.string(), z.array(TemplateEntry)]).nullish(),
});
const AddedToken = z.looseObject({ id: z.int().nonnegative(), content: z.string(), special: z.boolean().optional() });
const TokenizerJson = z.looseObject({ model: z.looseObject({ type: z.string().optional() }), added_tokens: z.array(AddedToken).nullish() });
const GenerationEos = z.looseObject({ eos_token_id: z.union([z.int(), z.array(z.int())]).nullish() });

const FILES_NOTE = 'a Hugging Face model directory holds tokenizer.json and tokenizer_config.json beside config.json';

function readJson(file: string, what: string): unknown {
  if (!existsSync(file)) throw new ModelFileError(`missing ${what} (${FILES_NOTE})`, { file });
  try {
    return JSON.parse(readFileSync(file, 'utf8'));
  } catch (e) {
    throw new ModelFileError(`cannot read ${what}: ${(e as Error).message}`, { file });
  }
}

function tokenText(v: z.infer<typeof SpecialToken>): string | null {
  if (v === undefined || v === null) return null;
  return typeof v === 'string' ? v : v.content;
}

/** Loads the tokenizer and chat template of a model directory. */
export function loadTokenizer(dir: string, opts: LoadTokenizerOptions = {}): ModelTokenizer {
  const tokFile = join(dir, 'tokenizer.json');
  const cfgFile = join(dir, 'tokenizer_config.json');
  const tokenizerText = existsSync(tokFile) ? readFileSync(tokFile, 'utf8') : null;
  if (tokenizerText === null) throw new ModelFileError(`missing tokenizer.json (${FILES_NOTE}; tokenizers saved only as tokenizer.model/vocab files are not supported)`, { file: tokFile });
  let tokJson: unknown;
  try {
    tokJson = JSON.parse(tokenizerText);
  } catch (e) {
    throw new ModelFileError(`cannot read tokenizer.json: ${(e as Error).message}`, { file: tokFile });
  }
  const tj = parseModelFile(TokenizerJson, tokJson, tokFile);
  const cfgJson = readJson(cfgFile, 'tokenizer_config.json');
  const cfg = parseModelFile(TokenizerConfig, cfgJson, cfgFile);

  // special tokens: tokenizer_config.json, else special_tokens_map.json (older checkpoints)
  const mapFile = join(dir, 'special_tokens_map.json');
  const map = existsSync(mapFile) ? parseModelFile(TokenizerConfig, readJson(mapFile, 'special_tokens_map.json'), mapFile) : {};
  const special = (k: 'bos_token' | 'eos_token' | 'pad_token' | 'unk_token') => tokenText(cfg[k]) ?? tokenText((map as Record<string, z.infer<typeof SpecialToken>>)[k]);

  // chat template: the option, chat_template.jinja (transformers >= 4.43), tokenizer_config.json, chat_template.json
  let template: string | null = opts.chatTemplate ?? null;
  let templateSource = 'the chatTemplate option';
  const jinjaFile = join(dir, 'chat_template.jinja');
  const jsonFile = join(dir, 'chat_template.json');
  if (template === null && existsSync(jinjaFile)) {
    template = readFileSync(jinjaFile, 'utf8');
    templateSource = jinjaFile;
  }
  if (template === null && cfg.chat_template) {
    const t = cfg.chat_template;
    template = typeof t === 'string' ? t : (t.find((e) => e.name === 'default')?.template ?? null);
    if (template === null) throw new ModelFileError(`chat_template lists named templates (${(t as { name: string }[]).map((e) => e.name).join(', ')}) but none named 'default'`, { file: cfgFile, path: 'chat_template' });
    templateSource = `${cfgFile} at chat_template`;
  }
  if (template === null && existsSync(jsonFile)) {
    const j = readJson(jsonFile, 'chat_template.json') as { chat_template?: unknown };
    if (typeof j.chat_template === 'string') {
      template = j.chat_template;
      templateSource = jsonFile;
    }
  }

  let tok: Tokenizer;
  try {
    tok = new Tokenizer(tokJson as object, cfgJson as object);
  } catch (e) {
    throw new ModelFileError(`cannot build the tokenizer (model type ${tj.model.type ?? 'unknown'}): ${(e as Error).message}`, { file: tokFile });
  }

  let eosFromGeneration: number[] = [];
  const genFile = join(dir, 'generation_config.json');
  if (existsSync(genFile)) {
    const g = parseModelFile(GenerationEos, readJson(genFile, 'generation_config.json'), genFile);
    const e = g.eos_token_id;
    eosFromGeneration = e === null || e === undefined ? [] : Array.isArray(e) ? e : [e];
  }

  return new ModelTokenizer({
    tok,
    dirName: basename(dir),
    tokenizerHash: createHash('sha256').update(tokenizerText).digest('hex'),
    cfgFile,
    bos: special('bos_token'),
    eos: special('eos_token'),
    pad: special('pad_token'),
    unk: special('unk_token'),
    addBos: cfg.add_bos_token ?? null,
    addEos: cfg.add_eos_token ?? null,
    cleanUp: cfg.clean_up_tokenization_spaces ?? null,
    specialTexts: (tj.added_tokens ?? []).filter((t) => t.special).map((t) => t.content),
    addedIds: (tj.added_tokens ?? []).map((t) => t.id),
    template,
    templateSource,
    templateVariables: opts.templateVariables ?? {},
    eosFromGeneration,
  });
}

interface TokenizerParts {
  tok: Tokenizer;
  dirName: string;
  tokenizerHash: string;
  cfgFile: string;
  bos: string | null;
  eos: string | null;
  pad: string | null;
  unk: string | null;
  addBos: boolean | null;
  addEos: boolean | null;
  cleanUp: boolean | null;
  specialTexts: string[];
  addedIds: number[];
  template: string | null;
  templateSource: string;
  templateVariables: Record<string, unknown>;
  eosFromGeneration: number[];
}

/** A loaded tokenizer with its special tokens and chat template; a ChatRenderer for the data pipeline. */
export class ModelTokenizer implements ChatRenderer, TokenCounter {
  readonly name: string;
  readonly exact = true;
  readonly bosToken: string | null;
  readonly eosToken: string | null;
  readonly padToken: string | null;
  readonly bosTokenId: number | null;
  readonly eosTokenId: number | null;
  readonly padTokenId: number | null;
  /** whether encode() puts BOS in front of plain text (add_bos_token, else what the post-processor does) */
  readonly addBos: boolean;
  readonly addEos: boolean;
  /** the ids that end an assistant turn: eos_token and generation_config.json's eos_token_id */
  readonly endOfTurnIds: ReadonlySet<number>;
  /** 1 + the largest token id (the embedding must have at least this many rows) */
  readonly vocabSize: number;
  readonly chatTemplate: string | null;
  private readonly tok: Tokenizer;
  private readonly compiled: Template | null;
  private readonly specialTexts: string[];
  private readonly specialIds: ReadonlySet<number>;
  private readonly cleanUp: boolean | null;
  private readonly templateVariables: Record<string, unknown>;
  private readonly templateSource: string;
  private readonly unkToken: string | null;

  constructor(private readonly parts: TokenizerParts) {
    const p = parts;
    this.tok = p.tok;
    this.name = `${p.dirName}:${createHash('sha256').update(p.tokenizerHash).update('\0').update(p.template ?? '').digest('hex').slice(0, 12)}`;
    const idOf = (text: string | null, field: string): number | null => {
      if (text === null) return null;
      const id = p.tok.token_to_id(text);
      if (id === undefined) throw new ModelFileError(`${field} ${JSON.stringify(text)} is not a token of tokenizer.json`, { file: p.cfgFile, path: field });
      return id;
    };
    this.bosToken = p.bos;
    this.eosToken = p.eos;
    this.padToken = p.pad;
    this.unkToken = p.unk;
    this.bosTokenId = idOf(p.bos, 'bos_token');
    this.eosTokenId = idOf(p.eos, 'eos_token');
    this.padTokenId = idOf(p.pad, 'pad_token');
    const probe = (add: boolean) => p.tok.encode('a', { add_special_tokens: add }).ids;
    const withSpecial = probe(true);
    const plain = probe(false);
    this.addBos = p.addBos ?? (this.bosTokenId !== null && withSpecial[0] === this.bosTokenId && plain[0] !== this.bosTokenId);
    this.addEos = p.addEos ?? (this.eosTokenId !== null && withSpecial.at(-1) === this.eosTokenId && plain.at(-1) !== this.eosTokenId);
    if (this.addBos && this.bosTokenId === null) throw new ModelFileError('add_bos_token is true but there is no bos_token', { file: p.cfgFile, path: 'add_bos_token' });
    if (this.addEos && this.eosTokenId === null) throw new ModelFileError('add_eos_token is true but there is no eos_token', { file: p.cfgFile, path: 'add_eos_token' });
    this.endOfTurnIds = new Set([...(this.eosTokenId !== null ? [this.eosTokenId] : []), ...p.eosFromGeneration]);
    this.specialTexts = p.specialTexts;
    this.specialIds = new Set(p.specialTexts.map((t) => p.tok.token_to_id(t)).filter((id): id is number => id !== undefined));
    this.cleanUp = p.cleanUp;
    let maxId = -1;
    for (const id of p.tok.get_vocab(true).values()) if (id > maxId) maxId = id;
    for (const id of p.addedIds) if (id > maxId) maxId = id;
    this.vocabSize = maxId + 1;
    this.chatTemplate = p.template;
    this.templateSource = p.templateSource;
    this.templateVariables = p.templateVariables;
    let compiled: Template | null = null;
    if (p.template !== null) {
      try {
        compiled = new Template(p.template);
      } catch (e) {
        throw new ModelFileError(`the chat template does not parse: ${(e as Error).message}`, { file: p.templateSource });
      }
    }
    this.compiled = compiled;
  }

  /** The same tokenizer (shared, not reloaded) with another chat template or template variables. */
  withOptions(opts: LoadTokenizerOptions): ModelTokenizer {
    const p = this.parts;
    return new ModelTokenizer({
      ...p,
      template: opts.chatTemplate ?? p.template,
      templateSource: opts.chatTemplate !== undefined ? 'the chatTemplate option' : p.templateSource,
      templateVariables: opts.templateVariables ?? p.templateVariables,
    });
  }

  /** Token ids of plain text; with addSpecialTokens (default), BOS/EOS as the model's tokenizer adds them. */
  encode(text: string, opts: EncodeOptions = {}): number[] {
    const ids = this.tok.encode(text, { add_special_tokens: false }).ids;
    if (opts.addSpecialTokens ?? true) {
      if (this.addBos) ids.unshift(this.bosTokenId!);
      if (this.addEos) ids.push(this.eosTokenId!);
    }
    return ids;
  }

  decode(ids: readonly number[], opts: DecodeOptions = {}): string {
    return this.tok.decode([...ids], {
      skip_special_tokens: opts.skipSpecialTokens ?? false,
      clean_up_tokenization_spaces: opts.cleanUpTokenizationSpaces ?? this.cleanUp ?? false,
    });
  }

  tokenToId(token: string): number | undefined {
    return this.tok.token_to_id(token);
  }

  idToToken(id: number): string | undefined {
    return this.tok.id_to_token(id);
  }

  countText(text: string): number {
    return this.encode(text, { addSpecialTokens: false }).length;
  }

  /** The conversation as text through the chat template (as transformers' apply_chat_template(tokenize=False)). */
  applyChatTemplate(messages: readonly ChatMessage[], opts: TemplateOptions = {}): string {
    if (!this.compiled) {
      throw new ChatTemplateError(
        `the tokenizer '${this.name}' has no chat template (looked for chat_template.jinja, tokenizer_config.json's chat_template and chat_template.json); pass one with the chatTemplate option (CHATML_TEMPLATE is the ChatML one)`,
      );
    }
    const ctx: Record<string, unknown> = { ...this.templateVariables, ...opts.variables };
    const tokens: [string, string | null][] = [
      ['bos_token', this.bosToken],
      ['eos_token', this.eosToken],
      ['pad_token', this.padToken],
      ['unk_token', this.unkToken],
    ];
    for (const [k, v] of tokens) if (v !== null && !(k in ctx)) ctx[k] = v;
    ctx.messages = messages.map((m) => ({ ...m }));
    ctx.add_generation_prompt = opts.addGenerationPrompt ?? false;
    try {
      return this.compiled.render(ctx);
    } catch (e) {
      throw new ChatTemplateError(`the chat template (${this.templateSource}) failed on ${messages.length} messages: ${(e as Error).message}`);
    }
  }

  /** Token ids of a conversation, e.g. a prompt for generation (addGenerationPrompt defaults to true). */
  encodeChat(messages: readonly ChatMessage[], opts: TemplateOptions = {}): number[] {
    this.checkContents(messages);
    return this.encode(this.applyChatTemplate(messages, { addGenerationPrompt: true, ...opts }), { addSpecialTokens: false });
  }

  count(messages: readonly ChatMessage[]): number {
    return this.encode(this.applyChatTemplate(messages), { addSpecialTokens: false }).length;
  }

  /**
   * Token ids of a training conversation and its loss mask: true exactly on the assistant turns' tokens
   * after their generation prompt, through their end-of-turn token.
   */
  render(messages: readonly ChatMessage[]): RenderedExample {
    this.checkContents(messages);
    const full = this.applyChatTemplate(messages);
    const ids = this.encode(full, { addSpecialTokens: false });
    const lossMask = new Array<boolean>(ids.length).fill(false);
    for (let i = 0; i < messages.length; i++) {
      if (messages[i].role !== 'assistant') continue;
      const startChar = this.turnStart(messages, i, full);
      const through = this.applyChatTemplate(messages.slice(0, i + 1));
      let endChar: number;
      if (full.startsWith(through)) endChar = through.length;
      else {
        // the template renders this turn differently once later turns follow (Qwen3 drops an empty
        // <think> block from earlier turns): the turn ends at its first end-of-turn token in the whole
        endChar = this.firstEndOfTurn(full, startChar, i);
      }
      const start = this.tokenBoundary(ids, full.slice(0, startChar));
      const end = this.tokenBoundary(ids, full.slice(0, endChar));
      let last = -1;
      for (let k = end - 1; k >= start && last < 0; k--) if (this.endOfTurnIds.has(ids[k])) last = k;
      for (let k = end - 1; k >= start && last < 0; k--) if (this.specialIds.has(ids[k])) last = k;
      const stop = last >= 0 ? last + 1 : end;
      for (let k = start; k < stop; k++) lossMask[k] = true;
    }
    return { ids, lossMask };
  }

  /**
   * Where assistant message i's generated text begins in the whole conversation `full`: after the
   * rendering of messages[0..i) with the generation prompt. Where the generation prompt differs from the
   * turn's header in history (Qwen3 with enable_thinking false prompts with an empty <think> block that
   * earlier turns lack), after the part of the generation prompt the conversation does contain.
   */
  private turnStart(messages: readonly ChatMessage[], i: number, full: string): number {
    const prompt = this.applyChatTemplate(messages.slice(0, i), { addGenerationPrompt: true });
    if (full.startsWith(prompt)) return prompt.length;
    const before = this.applyChatTemplate(messages.slice(0, i));
    if (full.startsWith(before) && prompt.startsWith(before)) {
      let k = before.length;
      while (k < prompt.length && k < full.length && prompt[k] === full[k]) k++;
      if (k > before.length) return k;
    }
    throw new ChatTemplateError(
      `cannot locate assistant message ${i}: the chat template renders messages[0..${i}) with the generation prompt as text that does not begin the whole conversation (the template rewrites earlier turns)`,
    );
  }

  /**
   * Number of leading tokens of `ids` that the text `prefix` covers. A token straddling the cut (a merge
   * across it, e.g. the prompt's "\n" with content starting "\n\n") belongs to the later side: at a
   * turn's start it is learned, since it carries generated text. (A turn's end normally follows its
   * end-of-turn token, a special token, which never merges.)
   */
  private tokenBoundary(ids: readonly number[], prefix: string): number {
    const p = this.encode(prefix, { addSpecialTokens: false });
    let n = 0;
    while (n < p.length && n < ids.length && p[n] === ids[n]) n++;
    return n;
  }

  private firstEndOfTurn(full: string, from: number, message: number): number {
    const texts = [...this.endOfTurnIds].map((id) => this.tok.id_to_token(id)).filter((t): t is string => !!t);
    for (const candidates of [texts, this.specialTexts]) {
      let best = -1;
      let len = 0;
      for (const t of candidates) {
        const at = full.indexOf(t, from);
        if (at >= 0 && (best < 0 || at < best)) {
          best = at;
          len = t.length;
        }
      }
      if (best >= 0) return best + len;
    }
    throw new ChatTemplateError(`cannot find where assistant message ${message} ends: no end-of-turn token follows it in the rendered conversation`);
  }

  /** Message text must not contain special-token strings: the tokenizer would read them as control tokens. */
  private checkContents(messages: readonly ChatMessage[]): void {
    messages.forEach((m, i) => {
      if (typeof m.content !== 'string') throw new ChatTemplateError(`messages[${i}].content must be a string`);
      for (const s of this.specialTexts) {
        if (m.content.includes(s)) throw new ChatTemplateError(`messages[${i}].content contains the special token ${JSON.stringify(s)}, which the tokenizer would read as a control token`);
      }
    });
  }
}
