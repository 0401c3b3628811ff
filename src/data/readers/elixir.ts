// Elixir/OTP source code, parsed enough to pair each module with its @moduledoc and each public
// function with its @doc, @spec and source. Produces code-explanation and API-usage examples.
// The parser is line based: it tracks heredocs, strings and comments well enough to count the
// do/fn ... end blocks of ordinary code; it is not a full Elixir parser.
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { sha256 } from '../hash.js';
import { listFiles, relPath } from '../io.js';
import type { Candidate, ReadContext, SourceReader } from './types.js';

export interface ElixirFunction {
  name: string;
  arity: number;
  doc?: string;
  spec?: string;
  source: string;
  line: number;
}

export interface ElixirModule {
  name: string;
  moduledoc?: string;
  line: number;
  source: string;
  functions: ElixirFunction[];
  /** behaviours and `use` lines, e.g. GenServer, Supervisor */
  uses: string[];
}

/** The line with strings, charlists and comments blanked, for counting keywords. */
function codeOnly(line: string): string {
  return line
    .replace(/"(?:[^"\\]|\\.)*"/g, '""')
    .replace(/'(?:[^'\\]|\\.)*'/g, "''")
    .replace(/~[a-zA-Z](?:\((?:[^)\\]|\\.)*\)|\[(?:[^\]\\]|\\.)*\]|\{(?:[^}\\]|\\.)*\}|\/(?:[^/\\]|\\.)*\/)/g, '~')
    .replace(/#.*$/, '')
    .replace(/\?[\w\\]/g, '0');
}

/** Net change of block depth on one (code only) line: do/fn open, end closes; `do:` is inline. */
function depthDelta(code: string): number {
  const opens = (code.match(/\bdo\b(?!:)/g)?.length ?? 0) + (code.match(/\bfn\b/g)?.length ?? 0);
  const closes = code.match(/\bend\b/g)?.length ?? 0;
  return opens - closes;
}

function arityOf(params: string | undefined): number {
  if (!params || !params.trim()) return 0;
  let depth = 0;
  let n = 1;
  for (const ch of params) {
    if ('([{'.includes(ch)) depth++;
    else if (')]}'.includes(ch)) depth--;
    else if (ch === ',' && depth === 0) n++;
  }
  return n;
}

function dedent(lines: string[]): string {
  const ind = Math.min(...lines.filter((l) => l.trim()).map((l) => /^\s*/.exec(l)![0].length));
  return lines.map((l) => l.slice(Number.isFinite(ind) ? ind : 0)).join('\n').trim();
}

/** Parses the modules of one file. */
export function parseElixir(src: string): ElixirModule[] {
  const lines = src.replace(/\r\n?/g, '\n').split('\n');
  const modules: ElixirModule[] = [];
  const stack: { mod: ElixirModule; depth: number; start: number }[] = [];
  let depth = 0;
  let pendingDoc: string | undefined;
  let pendingSpec: string | undefined;
  let fn: { f: ElixirFunction; depth: number; start: number } | undefined;
  let i = 0;
  const readAttr = (first: string, at: number): { text: string | undefined; next: number } => {
    // @doc """ heredoc """ | @doc "string" | @doc false
    const heredoc = /^\s*@(?:module)?doc\s+(?:~[sS])?"""\s*$/.test(first);
    if (heredoc) {
      const body: string[] = [];
      let j = at + 1;
      while (j < lines.length && !/^\s*"""/.test(lines[j])) body.push(lines[j++]);
      return { text: dedent(body), next: j + 1 };
    }
    const str = /^\s*@(?:module)?doc\s+(?:~[sS])?"((?:[^"\\]|\\.)*)"/.exec(first);
    if (str) return { text: str[1].replace(/\\n/g, '\n').replace(/\\"/g, '"'), next: at + 1 };
    return { text: undefined, next: at + 1 };
  };
  while (i < lines.length) {
    const line = lines[i];
    const cur = stack[stack.length - 1];
    if (/^\s*@moduledoc\b/.test(line)) {
      const r = readAttr(line, i);
      if (cur && r.text) cur.mod.moduledoc = r.text;
      i = r.next;
      continue;
    }
    if (/^\s*@doc\b/.test(line)) {
      const r = readAttr(line, i);
      pendingDoc = r.text;
      i = r.next;
      continue;
    }
    const spec = /^\s*@spec\s+(.+)$/.exec(line);
    if (spec) pendingSpec = spec[1].trim();
    const code = codeOnly(line);
    const mod = /^\s*defmodule\s+([\w.]+)\s+do\b/.exec(code);
    if (mod) {
      const m: ElixirModule = { name: cur ? (mod[1].includes('.') ? mod[1] : `${cur.mod.name}.${mod[1]}`) : mod[1], line: i + 1, source: '', functions: [], uses: [] };
      modules.push(m);
      stack.push({ mod: m, depth, start: i });
    }
    const use = /^\s*(?:use|@behaviour)\s+([\w.:]+)/.exec(code);
    if (use && cur) cur.mod.uses.push(use[1]);
    const def = !fn && cur ? /^\s*def\s+([a-z_][\w]*[?!]?)\s*(?:\((.*?)\))?\s*(?:when\b.*)?(,\s*do:|\bdo\b|$)/.exec(code) : null;
    const before = depth;
    depth += depthDelta(code);
    if (def && cur) {
      const f: ElixirFunction = { name: def[1], arity: arityOf(def[2]), doc: pendingDoc, spec: pendingSpec, source: '', line: i + 1 };
      if (depth > before) fn = { f, depth: before, start: i };
      else {
        f.source = dedent([line]);
        if (!cur.mod.functions.some((g) => g.name === f.name && g.arity === f.arity)) cur.mod.functions.push(f);
      }
      pendingDoc = pendingSpec = undefined;
    } else if (/^\s*defp?\s/.test(code)) pendingDoc = pendingSpec = undefined;
    if (fn && depth <= fn.depth) {
      fn.f.source = dedent(lines.slice(fn.start, i + 1));
      const m = stack[stack.length - 1].mod;
      const same = m.functions.find((g) => g.name === fn!.f.name && g.arity === fn!.f.arity);
      if (same) same.source += `\n\n${fn.f.source}`; // another clause of the same function
      else m.functions.push(fn.f);
      fn = undefined;
    }
    while (stack.length && depth <= stack[stack.length - 1].depth && i > stack[stack.length - 1].start) {
      const done = stack.pop()!;
      done.mod.source = dedent(lines.slice(done.start, i + 1));
    }
    i++;
  }
  return modules;
}

const MAX_SOURCE = 6000;

function fence(code: string): string {
  const c = code.length > MAX_SOURCE ? `${code.slice(0, MAX_SOURCE)}\n# ... (truncated)` : code;
  return '```elixir\n' + c + '\n```';
}

/** The examples of one module: explain the module, and for each documented function its API usage. */
export function moduleExamples(m: ElixirModule): { kind: string; line: number; messages: { role: string; content: string }[] }[] {
  const out: { kind: string; line: number; messages: { role: string; content: string }[] }[] = [];
  const documented = m.functions.filter((f) => f.doc);
  if (m.moduledoc) {
    const api = documented.map((f) => `- \`${f.name}/${f.arity}\`: ${firstSentence(f.doc!)}`).join('\n');
    const role = m.uses.length ? `\n\nIt builds on ${m.uses.map((u) => `\`${u}\``).join(', ')}.` : '';
    out.push({
      kind: 'module-explanation',
      line: m.line,
      messages: [
        { role: 'user', content: `Explain what this Elixir module does and how it is meant to be used:\n\n${fence(m.source)}` },
        { role: 'assistant', content: `\`${m.name}\`: ${m.moduledoc}${role}${api ? `\n\nIts public API:\n${api}` : ''}` },
      ],
    });
  }
  for (const f of documented) {
    const sig = f.spec ? `\n\nSpec: \`@spec ${f.spec}\`` : '';
    out.push({
      kind: 'api-usage',
      line: f.line,
      messages: [
        { role: 'user', content: `What does \`${m.name}.${f.name}/${f.arity}\` do, and how do I call it?` },
        { role: 'assistant', content: `${f.doc}${sig}\n\nIts implementation:\n\n${fence(f.source)}` },
      ],
    });
    out.push({
      kind: 'function-explanation',
      line: f.line,
      messages: [
        { role: 'user', content: `Explain this function from \`${m.name}\`:\n\n${fence(f.source)}` },
        { role: 'assistant', content: `\`${f.name}/${f.arity}\`: ${f.doc}` },
      ],
    });
  }
  return out;
}

function firstSentence(s: string): string {
  const m = /^[\s\S]*?[.!?](?=\s|$)/.exec(s.trim());
  return (m ? m[0] : s.trim().split('\n')[0]).replace(/\s+/g, ' ');
}

export class ElixirReader implements SourceReader {
  constructor(
    readonly name: string,
    private readonly path: string,
    readonly review: boolean,
  ) {}

  async *read(ctx: ReadContext): AsyncIterable<Candidate> {
    for (const file of await listFiles(resolve(ctx.baseDir, this.path), ['.ex', '.exs'])) {
      const rel = relPath(ctx.baseDir, file);
      const src = readFileSync(file, 'utf8');
      ctx.input({ file: rel, sha256: sha256(src) });
      for (const m of parseElixir(src)) {
        for (const ex of moduleExamples(m)) {
          yield {
            origin: { source: this.name, file: rel, line: ex.line },
            raw: { module: m.name, kind: ex.kind },
            value: { messages: ex.messages, category: 'code_understanding', metadata: { code: ex.kind, module: m.name } },
          };
        }
      }
    }
  }
}
