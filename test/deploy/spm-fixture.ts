// A SentencePiece-style tokenizer.json as transformers converts a Llama 2 / Mistral tokenizer.model:
// BPE with byte_fallback over '▁'-joined text (Prepend + Replace normalizers), <0xXX> byte tokens, and
// for every piece all of its splits into two pieces as merges, in the piece's order (transformers'
// SentencePieceExtractor). The pieces are learned here from a small corpus, within '▁' words.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

const CORPUS = `The supervisor restarts the GenServer when it crashes, and the nodes keep running.
defmodule Starweave.Pattern do use GenServer def init(state), do: {:ok, state} end
The user asks, the system thinks, and the assistant answers with care about processes and messages.`;

/** `metaspace`: the newer layout (no normalizer, a Metaspace pre-tokenizer prepending '▁' to the first piece). */
export function writeSpmTokenizer(dir: string, opts: { metaspace?: boolean; maxMerges?: number } = {}): void {
  const maxMerges = opts.maxMerges ?? 120;
  const SP = '\u2581';
  const specials = ['<unk>', '<s>', '</s>'];
  const vocab = new Map<string, number>();
  specials.forEach((t) => vocab.set(t, vocab.size));
  for (let b = 0; b < 256; b++) vocab.set(`<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`, vocab.size);
  const text = (SP + CORPUS.replace(/\n/g, ' ')).replace(/ /g, SP);
  for (const ch of new Set(Array.from(text))) vocab.set(ch, vocab.size);
  const words = text.split(new RegExp(`(?=${SP})`)).filter(Boolean).map((w) => Array.from(w));
  const created: string[] = [];
  while (created.length < maxMerges) {
    const counts = new Map<string, number>();
    for (const w of words) for (let i = 0; i + 1 < w.length; i++) counts.set(w[i] + '\u0000' + w[i + 1], (counts.get(w[i] + '\u0000' + w[i + 1]) ?? 0) + 1);
    let best = '';
    let n = 1;
    for (const [k, c] of counts) if (c > n || (c === n && n > 1 && k < best)) [best, n] = [k, c];
    if (!best) break;
    const [a, b] = best.split('\u0000');
    if (vocab.has(a + b)) break;
    vocab.set(a + b, vocab.size);
    created.push(a + b);
    for (const w of words) {
      for (let i = 0; i + 1 < w.length; i++) if (w[i] === a && w[i + 1] === b) w.splice(i, 2, a + b);
    }
  }
  const merges: [string, string][] = [];
  for (const piece of created) {
    const chars = Array.from(piece);
    const splits: [string, string][] = [];
    for (let i = 1; i < chars.length; i++) {
      const l = chars.slice(0, i).join('');
      const r = chars.slice(i).join('');
      if (vocab.has(l) && vocab.has(r)) splits.push([l, r]);
    }
    splits.sort((x, y) => vocab.get(x[0])! - vocab.get(y[0])! || vocab.get(x[1])! - vocab.get(y[1])!);
    merges.push(...splits);
  }
  const tokenizer = {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: specials.map((content, id) => ({ id, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true })),
    normalizer: opts.metaspace ? null : { type: 'Sequence', normalizers: [{ type: 'Prepend', prepend: SP }, { type: 'Replace', pattern: { String: ' ' }, content: SP }] },
    pre_tokenizer: opts.metaspace ? { type: 'Metaspace', replacement: SP, prepend_scheme: 'first', split: false } : null,
    post_processor: null,
    decoder: {
      type: 'Sequence',
      decoders: [{ type: 'Replace', pattern: { String: SP }, content: ' ' }, { type: 'ByteFallback' }, { type: 'Fuse' }, { type: 'Strip', content: ' ', start: 1, stop: 0 }],
    },
    model: { type: 'BPE', dropout: null, unk_token: '<unk>', continuing_subword_prefix: null, end_of_word_suffix: null, fuse_unk: true, byte_fallback: true, ignore_merges: false, vocab: Object.fromEntries(vocab), merges: merges.map(([l, r]) => `${l} ${r}`) },
  };
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'tokenizer.json'), JSON.stringify(tokenizer));
  writeFileSync(
    join(dir, 'tokenizer_config.json'),
    JSON.stringify({ add_bos_token: true, add_eos_token: false, bos_token: '<s>', eos_token: '</s>', unk_token: '<unk>', pad_token: null, clean_up_tokenization_spaces: false, tokenizer_class: 'LlamaTokenizerFast', legacy: false }),
  );
}
