// The tokenizer of the generated tiny models: a real byte-level BPE tokenizer.json (the GPT-2 / Qwen2 /
// SmolLM layout: a Split pre-tokenizer with the Llama-3 regex, ByteLevel bytes, BPE merges) with ChatML
// special tokens. Its merges are learned from a small built-in corpus of English and Elixir, so common
// words and code become single tokens; every byte is in the vocabulary, so any text encodes.
//
// ids: 0 <|endoftext|>, 1 <|im_start|>, 2 <|im_end|>, 3..258 the 256 bytes, then one id per merge.
import { CHATML_TEMPLATE } from './tokenizer.js';

export const SPECIAL_TOKENS = ['<|endoftext|>', '<|im_start|>', '<|im_end|>'] as const;
const FIRST_BYTE_ID = SPECIAL_TOKENS.length;
export const BASE_VOCAB = FIRST_BYTE_ID + 256;

/** The Oniguruma pattern in tokenizer.json (Llama 3's), as the Rust and JS tokenizers read it. */
const SPLIT_PATTERN = "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
/** The same pattern for JS RegExp (no inline case-insensitive groups in Node 20), used for training only. */
const SPLIT_JS = /'(?:[sS]|[tT]|[rR][eE]|[vV][eE]|[mM]|[lL][lL]|[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+/gu;

/** GPT-2's bytes_to_unicode: printable bytes map to themselves, the rest to code points from 256 up. */
function byteToUnicode(): string[] {
  const printable = (b: number) => (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
  const out: string[] = new Array(256);
  let next = 256;
  for (let b = 0; b < 256; b++) out[b] = String.fromCodePoint(printable(b) ? b : next++);
  return out;
}

const CORPUS = `The STARWEAVE system is a cluster of BEAM nodes that talk to local language models.
Each node runs supervisors, and every supervisor restarts the processes that fail.
A GenServer keeps its state in a loop: it receives a message, handles the call or the cast, and returns the new state.
Pattern recognition finds the shape of a problem before the solution; the system learns from its own interaction logs.
The assistant answers questions about distributed systems, memory, context and cognitive architectures.
When a process crashes, the supervisor restarts it with a clean state, and the rest of the tree keeps running.
Messages between nodes are copied, never shared, so one failing node does not corrupt another.
The user asks, the system thinks, and the assistant writes the answer with care.
Fine-tuning adapts a base model to the domain with low-rank adapters on the attention and the feed-forward layers.
Training reads batches of tokens, computes the loss on the assistant turns, and updates the adapter weights.
Evaluation compares the tuned model with the base model on held-out examples before it is deployed.
defmodule Starweave.Pattern do
  use GenServer

  def start_link(opts) do
    GenServer.start_link(__MODULE__, opts, name: __MODULE__)
  end

  @impl true
  def init(state), do: {:ok, state}

  @impl true
  def handle_call({:recognize, input}, _from, state) do
    result = Enum.map(input, fn x -> x * 2 end)
    {:reply, {:ok, result}, state}
  end

  @impl true
  def handle_cast({:store, key, value}, state) do
    {:noreply, Map.put(state, key, value)}
  end
end

case Starweave.Pattern.recognize(data) do
  {:ok, result} -> IO.inspect(result)
  {:error, reason} -> Logger.error("failed: #{inspect(reason)}")
end
system user assistant: the answer is 42, and the next one is 1234567890.
What is a process? A process is a lightweight thread of the BEAM with its own heap and mailbox.
How do nodes connect? Nodes connect through Erlang distribution, and :pg groups processes across the cluster.
`;

/** Learns up to `maxMerges` BPE merges from the built-in corpus (most frequent pair first, ties by text). */
export function learnMerges(maxMerges: number, corpus: string = CORPUS): [string, string][] {
  const b2u = byteToUnicode();
  const enc = new TextEncoder();
  const counts = new Map<string, number>();
  for (const m of corpus.matchAll(SPLIT_JS)) {
    const word = Array.from(enc.encode(m[0]), (b) => b2u[b]).join('\u0000');
    counts.set(word, (counts.get(word) ?? 0) + 1);
  }
  const words: { syms: string[]; n: number }[] = [...counts].sort((a, b) => (a[0] < b[0] ? -1 : 1)).map(([w, n]) => ({ syms: w.split('\u0000'), n }));
  const merges: [string, string][] = [];
  while (merges.length < maxMerges) {
    const pairs = new Map<string, number>();
    for (const w of words) {
      for (let i = 0; i + 1 < w.syms.length; i++) {
        const k = w.syms[i] + '\u0000' + w.syms[i + 1];
        pairs.set(k, (pairs.get(k) ?? 0) + w.n);
      }
    }
    let best = '';
    let bestN = 1; // a pair seen once teaches nothing
    for (const [k, n] of pairs) if (n > bestN || (n === bestN && bestN > 1 && k < best)) [best, bestN] = [k, n];
    if (!best) break;
    const [a, b] = best.split('\u0000');
    merges.push([a, b]);
    for (const w of words) {
      const s = w.syms;
      const out: string[] = [];
      for (let i = 0; i < s.length; i++) {
        if (i + 1 < s.length && s[i] === a && s[i + 1] === b) {
          out.push(a + b);
          i++;
        } else out.push(s[i]);
      }
      w.syms = out;
    }
  }
  return merges;
}

export interface TinyTokenizerFiles {
  tokenizerJson: Record<string, unknown>;
  tokenizerConfig: Record<string, unknown>;
  /** number of ids the tokenizer uses (<= the model's vocab_size) */
  size: number;
}

/** tokenizer.json and tokenizer_config.json of a tokenizer with at most `maxVocab` ids. */
export function buildTinyTokenizer(maxVocab: number, modelMaxLength: number): TinyTokenizerFiles {
  if (maxVocab < BASE_VOCAB) throw new RangeError(`a byte-level tokenizer needs at least ${BASE_VOCAB} ids, got vocab ${maxVocab}`);
  const b2u = byteToUnicode();
  const vocab: Record<string, number> = {};
  SPECIAL_TOKENS.forEach((t, i) => (vocab[t] = i));
  b2u.forEach((u, b) => (vocab[u] = FIRST_BYTE_ID + b));
  const merges = learnMerges(maxVocab - BASE_VOCAB);
  let next = BASE_VOCAB;
  for (const [a, b] of merges) vocab[a + b] ??= next++;
  const added = SPECIAL_TOKENS.map((content, id) => ({ id, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true }));
  const tokenizerJson = {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: added,
    normalizer: null,
    pre_tokenizer: {
      type: 'Sequence',
      pretokenizers: [
        { type: 'Split', pattern: { Regex: SPLIT_PATTERN }, behavior: 'Isolated', invert: false },
        { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: false },
      ],
    },
    post_processor: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: false, use_regex: true },
    decoder: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: true, use_regex: true },
    model: {
      type: 'BPE',
      dropout: null,
      unk_token: null,
      continuing_subword_prefix: null,
      end_of_word_suffix: null,
      fuse_unk: false,
      byte_fallback: false,
      ignore_merges: false,
      vocab,
      // "a b" strings: every tokenizers version reads them (byte-level symbols never contain a space)
      merges: merges.map(([a, b]) => `${a} ${b}`),
    },
  };
  const addedDecoder = Object.fromEntries(added.map(({ id, ...t }) => [String(id), t]));
  const tokenizerConfig = {
    add_bos_token: false,
    add_eos_token: false,
    add_prefix_space: false,
    added_tokens_decoder: addedDecoder,
    additional_special_tokens: ['<|im_start|>', '<|im_end|>'],
    bos_token: '<|im_start|>',
    eos_token: '<|im_end|>',
    pad_token: '<|endoftext|>',
    unk_token: null,
    chat_template: CHATML_TEMPLATE,
    clean_up_tokenization_spaces: false,
    model_max_length: modelMaxLength,
    tokenizer_class: 'PreTrainedTokenizerFast',
  };
  return { tokenizerJson, tokenizerConfig, size: next };
}
