// Ollama Modelfiles: the chat format recognised from the model's own Jinja template only when that
// template renders sample conversations as the family does (the tiny ChatML models, Qwen3, Llama 3.1
// with its default system preamble reported); unknown templates refused with the way out; the file's
// FROM / ADAPTER / TEMPLATE / PARAMETER stop lines, and the paths it names exist.
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { generateTinyModel } from '../../src/model/tiny.js';
import { loadTokenizer } from '../../src/model/tokenizer.js';
import type { ChatMessage } from '../../src/model/tokenizer.js';
import { writeSpmTokenizer } from './spm-fixture.js';
import { CHAT_FAMILIES, ChatTemplateNotRecognized, ollamaTemplate, recognizeChatTemplate, renderFamily, writeOllamaModelfile } from '../../src/deploy/modelfile.js';

let root: string;
let tinyDir: string;
beforeAll(async () => {
  root = mkdtempSync(join(tmpdir(), 'sw-deploy-modelfile-'));
  tinyDir = join(root, 'tiny');
  await generateTinyModel(tinyDir, 'tiny', 1);
});
afterAll(() => rmSync(root, { recursive: true, force: true }));

const modelsOf = (pkg: string) => fileURLToPath(new URL(`../../node_modules/@lenml/${pkg}/models`, import.meta.url));

const CONVERSATIONS: ChatMessage[][] = [
  [{ role: 'user', content: 'hello' }],
  [
    { role: 'system', content: 'Be brief.' },
    { role: 'user', content: 'What restarts a crashed process?' },
    { role: 'assistant', content: 'Its supervisor.' },
    { role: 'user', content: 'Which strategy?' },
    { role: 'assistant', content: 'one_for_one' },
    { role: 'user', content: 'Thanks.\nBye' },
  ],
];

// Qwen2.5-style ChatML: a default system block when the conversation has none
const CHATML_DEFAULT_SYSTEM =
  "{%- if messages[0]['role'] != 'system' %}{{- '<|im_start|>system\\nYou are a helpful assistant.<|im_end|>\\n' }}{%- endif %}" +
  "{%- for message in messages %}{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}{%- endfor %}" +
  "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}";

// Mistral-7B-Instruct-v0.1's template: [INST] turns, no system role, BOS written by the template
const MISTRAL_INST =
  "{{ bos_token }}{% for message in messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}" +
  "{% if message['role'] == 'user' %}{{ '[INST] ' + message['content'] + ' [/INST]' }}{% elif message['role'] == 'assistant' %}{{ message['content'] + eos_token }}{% else %}{{ raise_exception('Only user and assistant roles are supported!') }}{% endif %}{% endfor %}";

test.each([
  ['Mistral [INST] (SentencePiece tokenizer)', 'spm', MISTRAL_INST, 'mistral-inst', ''],
  ['tiny (ChatML)', null, null, 'chatml', ''],
  ['Qwen3', 'tokenizer-qwen3', null, 'chatml', ''],
  ['Llama 3.1', 'tokenizer-llama3_1', null, 'llama3', ''],
  ['ChatML with a default system prompt', null, CHATML_DEFAULT_SYSTEM, 'chatml', '<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n'],
] as const)('%s: recognised, and the family renders conversations as the model template does', (_n, pkg, chatTemplate, family, preamble) => {
  let dir = tinyDir;
  if (pkg === 'spm') {
    dir = join(root, 'spm');
    writeSpmTokenizer(dir);
  } else if (pkg) dir = modelsOf(pkg);
  const tok = loadTokenizer(dir, chatTemplate ? { chatTemplate } : {});
  const r = recognizeChatTemplate(tok);
  expect(r.family.name).toBe(family);
  expect(r.preamble).toBe(preamble);
  for (const conv of CONVERSATIONS) {
    if (!r.family.system && conv.some((m) => m.role === 'system')) {
      // no system turn: the template refuses it; the system text goes before the last user message
      expect(() => tok.applyChatTemplate(conv, { addGenerationPrompt: true })).toThrow(/Conversation roles must alternate/);
      const turns = conv.filter((m) => m.role !== 'system');
      const last = turns.length - 1;
      const folded = turns.map((m, i) => (i === last ? { ...m, content: `${conv[0].content}\n\n${m.content}` } : m));
      expect(renderFamily(r.family, conv, false)).toBe(tok.applyChatTemplate(folded, { addGenerationPrompt: true }).slice(r.family.begin.length));
      continue;
    }
    const jinja = tok.applyChatTemplate(conv, { addGenerationPrompt: true });
    const ours = renderFamily(r.family, conv, false);
    const withSystem = conv.some((m) => m.role === 'system');
    expect(jinja).toBe(r.family.begin + (withSystem ? '' : preamble) + ours);
  }
});

test('an unknown chat template is refused with the way out; an Ollama template can be given instead', () => {
  const tok = loadTokenizer(tinyDir, { chatTemplate: '{% for m in messages %}### {{ m.role }}: {{ m.content }}\n{% endfor %}### assistant:' });
  expect(() => recognizeChatTemplate(tok)).toThrow(ChatTemplateNotRecognized);
  expect(() => recognizeChatTemplate(tok)).toThrow(/not one of the recognised formats \(chatml, llama3, mistral-inst\).*--ollama-template FILE/);
  // a template that looks like ChatML but renders differently is not taken for ChatML
  const almost = loadTokenizer(tinyDir, { chatTemplate: "{% for m in messages %}<|im_start|>{{ m.role }}: {{ m.content }}<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}" });
  expect(() => recognizeChatTemplate(almost)).toThrow(/chatml: the model's template renders/);
  writeFileSync(join(root, 'model.gguf'), 'x');
  const mf = writeOllamaModelfile(root, tok, { from: 'model.gguf' }, { template: '{{ .Prompt }}' });
  expect(mf.family).toBeNull();
  expect(mf.text).toBe('FROM ./model.gguf\nTEMPLATE """{{ .Prompt }}"""\nPARAMETER stop "<|im_end|>"\n');
});

test('the Modelfile: FROM, ADAPTER, TEMPLATE, PARAMETER stop; the paths it names exist', () => {
  const tok = loadTokenizer(tinyDir);
  const dir = join(root, 'ollama');
  expect(() => writeOllamaModelfile(root, tok, { from: 'missing.gguf' })).toThrow(/missing\.gguf: the Modelfile would name a file that does not exist/);
  mkdirSync(dir);
  writeFileSync(join(dir, 'base.gguf'), 'x');
  writeFileSync(join(dir, 'adapter.gguf'), 'x');
  const mf = writeOllamaModelfile(dir, tok, { from: 'base.gguf', adapter: 'adapter.gguf' }, { system: 'You are STARWEAVE.', parameters: { temperature: 0.2 } });
  const text = readFileSync(join(dir, 'Modelfile'), 'utf8');
  expect(text).toBe(mf.text);
  const lines = text.split('\n');
  expect(lines[0]).toBe('FROM ./base.gguf');
  expect(lines[1]).toBe('ADAPTER ./adapter.gguf');
  expect(text).toContain(`TEMPLATE """${ollamaTemplate(CHAT_FAMILIES[0])}"""`);
  expect(text).toContain('SYSTEM """You are STARWEAVE."""');
  expect(lines.filter((l) => l.startsWith('PARAMETER stop'))).toEqual(['PARAMETER stop "<|im_end|>"']);
  expect(text).toContain('PARAMETER temperature 0.2');
  for (const m of text.matchAll(/^(?:FROM|ADAPTER) (\S+)$/gm)) expect(existsSync(join(dir, m[1]))).toBe(true);
  // the Go template: Ollama's variables only, blocks balanced, each piece of the family verbatim
  const t = ollamaTemplate(CHAT_FAMILIES[0]);
  const actions = [...t.matchAll(/\{\{(.*?)\}\}/gs)].map((m) => m[1].trim());
  const opens = actions.filter((a) => /^(if|range) /.test(a)).length;
  expect(actions.filter((a) => a === 'end').length).toBe(opens);
  for (const v of t.matchAll(/\.([A-Z]\w*)/g)) expect(['System', 'Messages', 'Role', 'Content']).toContain(v[1]);
  expect(t).not.toMatch(/\{\{-|-\}\}/); // no trim markers: the pieces' newlines are kept
  for (const piece of ['<|im_start|>user\n', '<|im_end|>\n', '<|im_start|>assistant\n', '<|im_start|>system\n']) expect(t).toContain(piece);
  // [INST]: the system text inside the last user turn, no generation prompt
  const inst = ollamaTemplate(CHAT_FAMILIES.find((f) => f.name === 'mistral-inst')!);
  expect(inst).toBe(
    '{{ range $i, $_ := .Messages }}{{ $last := eq (len (slice $.Messages $i)) 1 }}{{ if eq .Role "user" }}[INST] {{ if and $.System $last }}{{ $.System }}\n\n{{ end }}{{ .Content }} [/INST]' +
      '{{ else if eq .Role "assistant" }}{{ .Content }}{{ if not $last }}</s>{{ end }}{{ end }}{{ end }}',
  );
});
