// docs/PROTOCOL.md against the method table: its "Examples of each method" block has a request of every
// method in METHODS, and every example request that is valid JSON passes its method's params schema (as
// the sidecar checks it, src/port/server.ts), except one answered there with an invalid_params error.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { METHODS } from '../../src/port/methods.js';

const HEADING = '### Examples of each method';

/** The ```json block under the heading. */
function examplesBlock(): { text: string; firstLine: number } {
  const doc = readFileSync(join(process.cwd(), 'docs', 'PROTOCOL.md'), 'utf8');
  const at = doc.indexOf(HEADING);
  if (at < 0) throw new Error(`docs/PROTOCOL.md has no "${HEADING}" section`);
  const open = doc.indexOf('```json\n', at);
  const close = doc.indexOf('\n```', open + 1);
  if (open < 0 || close < 0) throw new Error(`docs/PROTOCOL.md: no \`\`\`json block under "${HEADING}"`);
  const next = doc.indexOf('\n#', at + HEADING.length);
  if (next >= 0 && next < open) throw new Error(`docs/PROTOCOL.md: the \`\`\`json block is not in the "${HEADING}" section`);
  const from = open + '```json\n'.length;
  return { text: doc.slice(from, close), firstLine: doc.slice(0, from).split('\n').length };
}

/** The block's entries: a line, with the indented lines after it (a long example wraps) joined to it. */
function entries(block: string, firstLine: number): { line: number; text: string }[] {
  const out: { line: number; text: string }[] = [];
  block.split('\n').forEach((l, i) => {
    if (!l.trim()) return;
    if (/^\s/.test(l) && out.length) out[out.length - 1].text += ' ' + l.trim();
    else out.push({ line: firstLine + i, text: l });
  });
  return out;
}

type Entry = { line: number; text: string; value: Record<string, unknown> | null };

function parsed(block: string, firstLine: number): Entry[] {
  return entries(block, firstLine).map((e) => {
    let value: Record<string, unknown> | null = null;
    try {
      const v: unknown = JSON.parse(e.text);
      if (v !== null && typeof v === 'object' && !Array.isArray(v)) value = v as Record<string, unknown>;
    } catch {
      // an example with <bin ...> placeholders: not JSON, not checked
    }
    return { ...e, value };
  });
}

const { text: block, firstLine } = examplesBlock();

test('every method in METHODS has an example request in the block', () => {
  const missing = Object.keys(METHODS).filter((name) => !block.includes(`"method": "${name}"`));
  if (missing.length) throw new Error(`docs/PROTOCOL.md "${HEADING}" has no example of: ${missing.join(', ')}`);
  // and the block names no method the table lacks
  const named = [...block.matchAll(/"method": "([^"]+)"/g)].map((m) => m[1]);
  expect(named.filter((n) => !(n in METHODS))).toEqual([]);
});

test('every example request that is JSON passes its method\'s params schema (unless answered invalid_params)', () => {
  const all = parsed(block, firstLine);
  const failures: string[] = [];
  let checked = 0;
  all.forEach((e, i) => {
    const v = e.value;
    if (!v || typeof v.method !== 'string') return;
    const spec = METHODS[v.method];
    if (!spec) return; // the first test names it
    if ('id' in v && v.id !== null) {
      // the example's reply: the next result or error with the same id (before a later request reuses it)
      const same = all.slice(i + 1).filter((r) => r.value && r.value.id === v.id);
      const later = same.findIndex((r) => 'method' in r.value!);
      const reply = (later < 0 ? same : same.slice(0, later)).find((r) => 'result' in r.value! || 'error' in r.value!);
      const error = reply?.value?.error as { code?: unknown } | undefined;
      if (error?.code === 'invalid_params') return;
    }
    // as src/port/server.ts checks them: absent (or nil) params are undefined
    const r = spec.params.safeParse(v.params ?? undefined);
    checked++;
    if (!r.success)
      failures.push(`${v.method} (docs/PROTOCOL.md line ${e.line}):\n  ${e.text}\n  ${r.error.issues.map((x) => `${x.path.join('.') || '(params)'}: ${x.message}`).join('\n  ')}`);
  });
  if (failures.length) throw new Error(`example params that fail their schema:\n${failures.join('\n')}`);
  expect(checked).toBeGreaterThan(0);
});
