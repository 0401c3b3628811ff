// Domain documents: Markdown and text split on headings into passages, turned into examples by
// templates: passage-grounded Q&A (the question names the section, the answer is the passage) and
// continued-pretraining text in chat form (the assistant continues a passage from its opening).
import { readFileSync } from 'node:fs';
import { basename, resolve } from 'node:path';
import { sha256, fnv1a } from '../hash.js';
import { listFiles, relPath } from '../io.js';
import type { Candidate, ReadContext, SourceReader } from './types.js';

export interface Passage {
  /** heading path, outermost first ("Pattern engine > Windows") */
  headings: string[];
  text: string;
  /** 1-based line of the passage's heading (or first line) */
  line: number;
}

/** Splits Markdown on ATX headings (#..######), ignoring headings inside ``` fences. */
export function splitMarkdown(src: string, maxChars: number): Passage[] {
  const lines = src.replace(/\r\n?/g, '\n').split('\n');
  const out: Passage[] = [];
  const stack: string[] = [];
  let body: string[] = [];
  let start = 1;
  let fence = false;
  const flush = () => {
    const text = body.join('\n').trim();
    if (text) for (const piece of chunk(text, maxChars)) out.push({ headings: [...stack], text: piece, line: start });
    body = [];
  };
  lines.forEach((l, i) => {
    if (/^\s*(```|~~~)/.test(l)) fence = !fence;
    const m = fence ? null : /^(#{1,6})\s+(.+?)\s*#*\s*$/.exec(l);
    if (m) {
      flush();
      stack.length = Math.min(stack.length, m[1].length - 1);
      while (stack.length < m[1].length - 1) stack.push('');
      stack.push(m[2]);
      start = i + 1;
    } else body.push(l);
  });
  flush();
  for (const p of out) p.headings = p.headings.filter(Boolean);
  return out;
}

/** Splits plain text into passages of blank-line separated paragraphs, each under maxChars. */
export function splitText(src: string, maxChars: number): Passage[] {
  const lines = src.replace(/\r\n?/g, '\n').split('\n');
  const out: Passage[] = [];
  let para: string[] = [];
  let start = 1;
  lines.forEach((l, i) => {
    if (!l.trim()) {
      if (para.length) out.push({ headings: [], text: para.join('\n'), line: start });
      para = [];
    } else {
      if (!para.length) start = i + 1;
      para.push(l);
    }
  });
  if (para.length) out.push({ headings: [], text: para.join('\n'), line: start });
  // merge short paragraphs up to maxChars
  const merged: Passage[] = [];
  for (const p of out) {
    const last = merged[merged.length - 1];
    if (last && last.text.length + p.text.length + 2 <= maxChars) last.text += `\n\n${p.text}`;
    else merged.push({ ...p, text: p.text.slice(0, Math.max(maxChars, 1)) });
  }
  return merged;
}

/** Cuts text at paragraph (else sentence) boundaries into pieces of at most maxChars. */
function chunk(text: string, maxChars: number): string[] {
  if (text.length <= maxChars) return [text];
  const pieces: string[] = [];
  let cur = '';
  for (const para of text.split(/\n{2,}/)) {
    const parts = para.length > maxChars ? para.match(new RegExp(`[\\s\\S]{1,${maxChars}}(?=\\s|$)`, 'g')) ?? [para.slice(0, maxChars)] : [para];
    for (const p of parts) {
      if (cur && cur.length + p.length + 2 > maxChars) {
        pieces.push(cur);
        cur = '';
      }
      cur = cur ? `${cur}\n\n${p}` : p;
    }
  }
  if (cur) pieces.push(cur);
  return pieces;
}

const QUESTIONS = [
  'What does the STARWEAVE documentation say about {topic}?',
  'Can you explain {topic} as it works in STARWEAVE?',
  'I need the details on {topic} in STARWEAVE. What should I know?',
  'Summarize how STARWEAVE handles {topic}.',
  'How is {topic} described in the STARWEAVE docs?',
];

/** The examples of one passage: Q&A grounded in it and/or a continuation of it. */
export function passageExamples(p: Passage, docTitle: string, produce: readonly ('qa' | 'continuation')[]): { kind: string; messages: { role: string; content: string }[] }[] {
  const topic = p.headings.length ? p.headings[p.headings.length - 1] : docTitle;
  const context = p.headings.length > 1 ? ` (in "${p.headings.slice(0, -1).join(' > ')}")` : '';
  const out: { kind: string; messages: { role: string; content: string }[] }[] = [];
  if (produce.includes('qa')) {
    const q = QUESTIONS[fnv1a(p.text) % QUESTIONS.length].replace('{topic}', topic.toLowerCase() === topic ? topic : lowerFirst(topic));
    out.push({ kind: 'qa', messages: [{ role: 'user', content: q + (context ? ` I'm reading the section${context}.` : '') }, { role: 'assistant', content: p.text }] });
  }
  if (produce.includes('continuation')) {
    const cut = continuationCut(p.text);
    if (cut > 0)
      out.push({
        kind: 'continuation',
        messages: [
          { role: 'user', content: `Continue this passage from the STARWEAVE documentation ("${topic}"):\n\n${p.text.slice(0, cut).trimEnd()}` },
          { role: 'assistant', content: p.text.slice(cut).trimStart() },
        ],
      });
  }
  return out;
}

function lowerFirst(s: string): string {
  return /^[A-Z][a-z]/.test(s) ? s[0].toLowerCase() + s.slice(1) : s;
}

/** Where to cut a passage for continuation: the sentence or paragraph end nearest a third of it; 0 when too short. */
function continuationCut(text: string): number {
  if (text.length < 240) return 0;
  const target = Math.floor(text.length / 3);
  const re = /[.!?:]\s+|\n\n/g;
  let best = 0;
  for (let m = re.exec(text); m; m = re.exec(text)) {
    const end = m.index + m[0].length;
    if (end > text.length * 0.75) break;
    if (Math.abs(end - target) < Math.abs(best - target)) best = end;
  }
  return best > 40 ? best : 0;
}

export class DocumentsReader implements SourceReader {
  constructor(
    readonly name: string,
    private readonly path: string,
    private readonly opts: { category?: string; produce: readonly ('qa' | 'continuation')[]; minPassageChars: number; maxPassageChars: number },
    readonly review: boolean,
  ) {}

  async *read(ctx: ReadContext): AsyncIterable<Candidate> {
    for (const file of await listFiles(resolve(ctx.baseDir, this.path), ['.md', '.markdown', '.txt'])) {
      const rel = relPath(ctx.baseDir, file);
      const src = readFileSync(file, 'utf8');
      ctx.input({ file: rel, sha256: sha256(src) });
      const md = !file.toLowerCase().endsWith('.txt');
      const passages = md ? splitMarkdown(src, this.opts.maxPassageChars) : splitText(src, this.opts.maxPassageChars);
      const title = (md && /^#\s+(.+)$/m.exec(src)?.[1]) || basename(file).replace(/\.[^.]+$/, '').replace(/[-_]/g, ' ');
      for (const p of passages) {
        if (p.text.length < this.opts.minPassageChars) continue; // headings-only and stub sections carry no content to learn
        for (const ex of passageExamples(p, title, this.opts.produce)) {
          yield {
            origin: { source: this.name, file: rel, line: p.line },
            raw: { passage: p, kind: ex.kind },
            value: { messages: ex.messages, category: this.opts.category, metadata: { document: ex.kind, section: p.headings.join(' > ') || title } },
          };
        }
      }
    }
  }
}
