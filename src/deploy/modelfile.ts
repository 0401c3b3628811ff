// Ollama Modelfiles for GGUF exports: FROM the GGUF model (or the base GGUF with ADAPTER the GGUF LoRA
// adapter), TEMPLATE in Ollama's Go-template syntax for the model's chat format, PARAMETER stop for its
// end-of-turn tokens. Ready for `ollama create NAME -f Modelfile` (paths are relative to the Modelfile).
//
// The chat format is recognised from the model's own Jinja chat template: a family is used only when the
// model's template renders sample conversations exactly as the family's pieces do (after a preamble the
// template may add before the turns, e.g. Llama 3.1's default system block: see `preamble`). Known
// families: ChatML (Qwen2, SmolLM2, the tiny models), Llama 3 and Mistral's [INST] (no system turn: the
// system text goes into the last user message, as Ollama's own mistral template does). Anything else is
// refused with the reason;
// pass your own Ollama template (`template` option, `--ollama-template FILE`) to export it anyway.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { writeFileAtomicSync } from '../model/atomic.js';
import type { ChatMessage, ModelTokenizer } from '../model/tokenizer.js';

/** One chat format as literal pieces around each message's content. */
export interface ChatFamily {
  name: string;
  /** text in the model's template that identifies the family */
  marker: string;
  /** text that starts the conversation when the runtime does not add it itself (BOS in the template) */
  begin: string;
  /** null: the format has no system turn; the system text goes before the last user message's content, then a blank line */
  system: [string, string] | null;
  user: [string, string];
  assistant: [string, string];
  /** the assistant header that prompts a reply */
  generation: string;
  /** end-of-turn texts the family needs as stop sequences */
  stops: string[];
}

export const CHAT_FAMILIES: ChatFamily[] = [
  {
    name: 'chatml',
    marker: '<|im_start|>',
    begin: '',
    system: ['<|im_start|>system\n', '<|im_end|>\n'],
    user: ['<|im_start|>user\n', '<|im_end|>\n'],
    assistant: ['<|im_start|>assistant\n', '<|im_end|>\n'],
    generation: '<|im_start|>assistant\n',
    stops: ['<|im_end|>'],
  },
  {
    name: 'llama3',
    marker: '<|start_header_id|>',
    begin: '<|begin_of_text|>',
    system: ['<|start_header_id|>system<|end_header_id|>\n\n', '<|eot_id|>'],
    user: ['<|start_header_id|>user<|end_header_id|>\n\n', '<|eot_id|>'],
    assistant: ['<|start_header_id|>assistant<|end_header_id|>\n\n', '<|eot_id|>'],
    generation: '<|start_header_id|>assistant<|end_header_id|>\n\n',
    stops: ['<|eot_id|>'],
  },
  {
    // Mistral / Llama 2 [INST] (Mistral-7B-Instruct v0.1-v0.2, Mixtral): no system turn, no generation prompt
    name: 'mistral-inst',
    marker: '[INST]',
    begin: '<s>',
    system: null,
    user: ['[INST] ', ' [/INST]'],
    assistant: ['', '</s>'],
    generation: '',
    stops: ['[INST]', '[/INST]'],
  },
];

/**
 * What the family's Go template renders for a conversation (system messages first, as Ollama passes
 * them in .System), with the generation prompt when the last message is not the assistant's. The Go
 * template below follows exactly this logic.
 */
export function renderFamily(f: ChatFamily, messages: readonly ChatMessage[], withBegin = true): string {
  let out = withBegin ? f.begin : '';
  const system = messages.filter((m) => m.role === 'system').map((m) => m.content).join('\n');
  if (system && f.system) out += f.system[0] + system + f.system[1];
  const turns = messages.filter((m) => m.role !== 'system');
  turns.forEach((m, i) => {
    const last = i === turns.length - 1;
    const content = system && !f.system && last && m.role === 'user' ? `${system}\n\n${m.content}` : m.content;
    if (m.role === 'user') out += f.user[0] + content + f.user[1];
    else if (m.role === 'assistant') out += f.assistant[0] + m.content + (last ? '' : f.assistant[1]);
    if (last && m.role !== 'assistant') out += f.generation;
  });
  return out;
}

/**
 * The family as an Ollama (Go text/template) TEMPLATE; no trim markers, so every piece is kept verbatim.
 * `begin` is included only when the runtime does not add BOS itself (tokenizer.ggml.add_bos_token false).
 */
export function ollamaTemplate(f: ChatFamily, includeBegin = false): string {
  for (const piece of [f.system ?? [], f.user, f.assistant].flat().concat(f.generation)) {
    if (piece.includes('{{') || piece.includes('"""')) throw new Error(`chat family ${f.name}: a piece contains '{{' or '"""'`);
  }
  const systemInUser = f.system ? '' : '{{ if and $.System $last }}{{ $.System }}\n\n{{ end }}';
  return (
    (includeBegin ? f.begin : '') +
    (f.system ? `{{ if .System }}${f.system[0]}{{ .System }}${f.system[1]}{{ end }}` : '') +
    `{{ range $i, $_ := .Messages }}{{ $last := eq (len (slice $.Messages $i)) 1 }}` +
    `{{ if eq .Role "user" }}${f.user[0]}${systemInUser}{{ .Content }}${f.user[1]}` +
    `{{ else if eq .Role "assistant" }}${f.assistant[0]}{{ .Content }}{{ if not $last }}${f.assistant[1]}{{ end }}{{ end }}` +
    (f.generation ? `{{ if and $last (ne .Role "assistant") }}${f.generation}{{ end }}` : '') +
    `{{ end }}`
  );
}

const SAMPLES: ChatMessage[][] = [
  [{ role: 'user', content: 'What is a GenServer?' }],
  [
    { role: 'user', content: 'What is a supervisor?' },
    { role: 'assistant', content: 'A process that restarts its children.' },
    { role: 'user', content: 'And a link?' },
  ],
  [
    { role: 'system', content: 'You answer about Elixir.' },
    { role: 'user', content: 'What is a supervisor?' },
    { role: 'assistant', content: 'A process that restarts its children.' },
    { role: 'user', content: 'And a link?' },
  ],
];

export interface RecognizedTemplate {
  family: ChatFamily;
  /** text the model's template puts before the turns that the Ollama template does not reproduce (a default system block); '' when none */
  preamble: string;
}

export class ChatTemplateNotRecognized extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ChatTemplateNotRecognized';
  }
}

/**
 * Finds the family whose rendering the model's chat template reproduces on sample conversations (with the
 * generation prompt); throws ChatTemplateNotRecognized naming what differs.
 */
export function recognizeChatTemplate(tok: ModelTokenizer): RecognizedTemplate {
  if (!tok.chatTemplate) throw new ChatTemplateNotRecognized(`the tokenizer has no chat template; pass an Ollama template (--ollama-template FILE)`);
  const reasons: string[] = [];
  for (const f of CHAT_FAMILIES) {
    if (!tok.chatTemplate.includes(f.marker)) continue;
    let preamble: string | null = null;
    let ok = true;
    // a format without a system turn is checked on the conversations without one (its templates refuse them)
    for (const sample of SAMPLES.filter((c) => f.system || !c.some((m) => m.role === 'system'))) {
      let jinja: string;
      try {
        jinja = tok.applyChatTemplate(sample, { addGenerationPrompt: true });
      } catch (e) {
        reasons.push(`${f.name}: the template failed: ${(e as Error).message}`);
        ok = false;
        break;
      }
      const system = sample.find((m) => m.role === 'system')?.content;
      const turns = renderFamily(f, sample.filter((m) => m.role !== 'system'), false);
      const rest = jinja.startsWith(f.begin) ? jinja.slice(f.begin.length) : jinja;
      if (!rest.endsWith(turns)) {
        reasons.push(`${f.name}: the model's template renders ${JSON.stringify(jinja.slice(-300))}, the family ${JSON.stringify(turns.slice(-300))}`);
        ok = false;
        break;
      }
      const pre = rest.slice(0, rest.length - turns.length);
      if (system !== undefined && f.system) {
        // the system message in the family's system block (a template may add fixed text before the content)
        const [open, close] = f.system;
        if (!pre.startsWith(open) || !pre.endsWith(system + close)) {
          reasons.push(`${f.name}: the system message renders as ${JSON.stringify(pre.slice(0, 200))}`);
          ok = false;
          break;
        }
      } else {
        preamble = pre;
      }
    }
    if (ok) return { family: f, preamble: preamble ?? '' };
  }
  throw new ChatTemplateNotRecognized(
    `the chat template is not one of the recognised formats (${CHAT_FAMILIES.map((f) => f.name).join(', ')})${reasons.length ? ': ' + reasons.join('; ') : ''}; pass an Ollama Go template with --ollama-template FILE (the template option)`,
  );
}

export interface ModelfileSpec {
  /** the GGUF model (relative to the Modelfile's directory) */
  from: string;
  /** the GGUF LoRA adapter applied on top of FROM */
  adapter?: string;
  /** the TEMPLATE (Go template); null: none (Ollama then sends the raw prompt) */
  template: string | null;
  stops: string[];
  system?: string;
  /** other PARAMETER lines (temperature, top_k, top_p, repeat_penalty, num_ctx) */
  parameters?: Record<string, string | number>;
}

/** Quotes a PARAMETER / SYSTEM value as the Modelfile parser reads a quoted string. */
function quote(v: string): string {
  return JSON.stringify(v);
}

export function renderModelfile(s: ModelfileSpec): string {
  const lines = [`FROM ${s.from}`];
  if (s.adapter) lines.push(`ADAPTER ${s.adapter}`);
  if (s.template !== null) {
    if (s.template.includes('"""')) throw new Error('the TEMPLATE cannot contain """');
    lines.push(`TEMPLATE """${s.template}"""`);
  }
  if (s.system) {
    if (s.system.includes('"""')) throw new Error('the SYSTEM text cannot contain """');
    lines.push(`SYSTEM """${s.system}"""`);
  }
  for (const stop of s.stops) lines.push(`PARAMETER stop ${quote(stop)}`);
  for (const [k, v] of Object.entries(s.parameters ?? {})) lines.push(`PARAMETER ${k} ${typeof v === 'number' ? v : quote(v)}`);
  return lines.join('\n') + '\n';
}

export interface OllamaModelfileOptions {
  /** an Ollama Go template to use instead of the recognised one */
  template?: string;
  system?: string;
  parameters?: Record<string, string | number>;
}

export interface OllamaModelfileResult {
  path: string;
  text: string;
  family: string | null;
  stops: string[];
  preamble: string;
}

/**
 * Writes `dir/Modelfile` for a GGUF model (and adapter) in `dir`. Stops: the family's end-of-turn text and
 * the tokenizer's end-of-turn tokens (eos, generation_config.json's eos_token_id list).
 */
export function writeOllamaModelfile(dir: string, tok: ModelTokenizer, files: { from: string; adapter?: string }, opts: OllamaModelfileOptions = {}): OllamaModelfileResult {
  for (const f of [files.from, files.adapter]) {
    if (f && !existsSync(join(dir, f))) throw new Error(`${join(dir, f)}: the Modelfile would name a file that does not exist`);
  }
  let template: string;
  let family: string | null = null;
  let preamble = '';
  const stops: string[] = [];
  if (opts.template !== undefined) {
    template = opts.template;
  } else {
    const r = recognizeChatTemplate(tok);
    template = ollamaTemplate(r.family, !tok.addBos);
    family = r.family.name;
    preamble = r.preamble;
    stops.push(...r.family.stops);
  }
  for (const id of tok.endOfTurnIds) {
    const t = tok.idToToken(id);
    if (t !== undefined && !stops.includes(t)) stops.push(t);
  }
  const text = renderModelfile({ from: `./${files.from}`, adapter: files.adapter ? `./${files.adapter}` : undefined, template, stops, system: opts.system, parameters: opts.parameters });
  const path = join(dir, 'Modelfile');
  writeFileAtomicSync(path, text);
  return { path, text, family, stops, preamble };
}
