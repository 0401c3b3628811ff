// Temp folders and small writers for the data tests.
import { mkdtempSync, writeFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';

export function tempDir(prefix = 'sw-data-'): string {
  return mkdtempSync(join(tmpdir(), prefix));
}

export function write(dir: string, rel: string, text: string): string {
  const p = join(dir, rel);
  mkdirSync(dirname(p), { recursive: true });
  writeFileSync(p, text);
  return p;
}

export const jsonl = (rows: unknown[]) => rows.map((r) => (typeof r === 'string' ? r : JSON.stringify(r))).join('\n') + '\n';

export const chat = (user: string, assistant: string, category = 'system_interaction') => ({
  category,
  messages: [
    { role: 'user', content: user },
    { role: 'assistant', content: assistant },
  ],
});

/**
 * A deterministic JSONL corpus that exercises every path the optimized pipeline has a fast case for:
 * non-ASCII words (case mapping, final sigma, astral letters, lone surrogates), exact copies that differ
 * in case and spacing, near copies, secrets and personal data, control characters, text to normalize,
 * strings JSON must escape, the other input formats, bad lines, and CRLF and lone CR line ends.
 */
export function stressCorpus(seed: number, n: number, rnd: (seed: number) => () => number): string {
  const r = rnd(seed);
  const pick = <T>(xs: readonly T[]) => xs[Math.floor(r() * xs.length)];
  const odd = ['ΣΊΣΥΦΟΣ', 'ὈΔΥΣΣΕΎΣ', 'İstanbul', 'straße', 'naïve', 'Café', 'Ǆemal', '日本語', 'テスト', '𝐀𝐁𝐂', '𝒳yz', '😀', 'e\u0301', 'ﬁle', 'Ⅻ', '٣٤٥', 'x²', 'aΣ', 'aΣb', 'ΣΣ', 'K', '\u0130', 'ẞ', '\ud800x', 'y\udc00', 'say "hi"', 'C:\\tmp', 'tab\there', 'a\u200bb', 'x\u202ey', '\u00a0nbsp', 'bell\u0007'];
  const secret = ['sk-abcdefghijklmnopqrstuvwx', 'ghp_abcdefghijklmnopqrstuvwxyz0123456789', 'AKIAABCDEFGHIJKLMNOP', 'eyJabcdefghij.eyJabcdefghij.abcdefghij', 'Bearer abcdefghijklmnopqrstuv', 'password=hunter2hunter2', 'mail ops@example.com', 'from 10.1.2.3', 'at fe80::1', '/home/alice/x', 'api_key: abcdefgh12345678', 'starweave@node-1 is up', '@doc "x"', 'back-pressure', 'look at the token', 'secretary'];
  const plain = 'the supervisor restarts the child when it crashes and the registry tracks the name of every process in the tree while the matcher scores each window'.split(' ');
  const cats = ['pattern_recognition', 'system_interaction', 'code_understanding', 'memory_context'];
  const text = (k: number) => Array.from({ length: k }, () => (r() < 0.12 ? pick(odd) : r() < 0.05 ? pick(secret) : pick(plain))).join(r() < 0.1 ? '\n' : ' ');
  const bases: { messages: { role: string; content: string }[]; category?: string }[] = [];
  const out: string[] = [];
  for (let i = 0; i < n; i++) {
    const u = r();
    let o: Record<string, unknown>;
    if (u < 0.08 && bases.length) {
      const b = pick(bases);
      o = { ...b, messages: b.messages.map((m) => ({ ...m, content: r() < 0.5 ? `  ${m.content.toUpperCase()}!! ` : m.content.replace(/ /g, '  ') })) };
    } else if (u < 0.2 && bases.length) {
      const b = pick(bases);
      const msgs = b.messages.map((m) => ({ ...m }));
      const last = msgs[msgs.length - 1];
      const w = last.content.split(' ');
      for (let k = Math.floor(r() * 4); k > 0; k--) w[Math.floor(r() * w.length)] = pick([...plain, ...odd]);
      last.content = w.join(' ');
      o = { ...b, messages: msgs };
    } else if (u < 0.23) {
      o = { conversations: [{ from: 'human', value: text(6) }, { from: 'gpt', value: text(30) }] };
    } else if (u < 0.25) {
      o = { instruction: text(5), input: r() < 0.5 ? text(3) : '', output: text(25) };
    } else {
      const messages: { role: string; content: string }[] = [];
      if (r() < 0.15) messages.push({ role: 'system', content: `You are STARWEAVE. ${pick(odd)}` });
      for (let t = 1 + Math.floor(r() * 3); t > 0; t--) {
        messages.push({ role: 'user', content: text(3 + Math.floor(r() * 10)) });
        messages.push({ role: 'assistant', content: text(r() < 0.1 ? 2 : 10 + Math.floor(r() * 60)) });
      }
      o = { id: `s-${i}`, messages, metadata: { tag: pick(odd), n: i } };
      if (r() < 0.75) o.category = pick(cats);
      if (r() < 0.3) o.node = `starweave@n${i % 5}`;
      if (r() < 0.1) o.rating = 1 + Math.floor(r() * 5);
      if (r() < 0.03) messages.push({ role: 'user', content: 'a dangling question' });
      if (r() < 0.02) messages[0].content = ' \n ';
      bases.push(o as (typeof bases)[number]);
    }
    out.push(r() < 0.01 ? '{"messages": [' : JSON.stringify(o));
  }
  // mixed line ends: mostly \n, some \r\n, a few lone \r
  return out.map((l) => l + (r() < 0.1 ? '\r\n' : r() < 0.02 ? '\r' : '\n')).join('');
}
