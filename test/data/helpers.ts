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
