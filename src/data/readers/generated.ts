// Generated examples: seeded template generators for the four categories. A conversation strings
// together one to three scenarios of one category (a debugging session that moves from a timeout to
// the crash behind it), with the phrasing of every question, the slot values and an optional system
// prompt drawn from a seeded generator: the same seed always gives the same examples.
import { sha256, canonicalJson } from '../hash.js';
import { CATEGORIES, type Category } from '../schema.js';
import { SCENARIOS, SLOTS, SYSTEM_PROMPTS, type Scenario } from './generated-banks.js';
import type { Candidate, ReadContext, SourceReader } from './types.js';

// a local binding: a global lookup of Math.imul is not inlined inside vm contexts (jest), 100x slower there
const imul = Math.imul;

/** mulberry32: a small, fast, seeded PRNG returning floats in [0, 1). */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = imul(t ^ (t >>> 15), t | 1);
    t ^= t + imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const pick = <T>(r: () => number, xs: readonly T[]): T => xs[Math.floor(r() * xs.length)];

export interface GeneratedExample {
  category: Category;
  messages: { role: 'system' | 'user' | 'assistant'; content: string }[];
  scenarios: string[];
}

/** Generates `perCategory` conversations for each category, deterministically from `seed`. */
export function* generateExamples(seed: number, perCategory: number, categories: readonly Category[] = CATEGORIES): Generator<GeneratedExample> {
  const r = rng(seed);
  const byCat = new Map<Category, Scenario[]>(CATEGORIES.map((c) => [c, SCENARIOS.filter((s) => s.category === c)]));
  for (const category of categories) {
    const pool = byCat.get(category)!;
    for (let n = 0; n < perCategory; n++) {
      const slots: Record<string, string> = {};
      for (const [k, vs] of Object.entries(SLOTS)) slots[k] = pick(r, vs);
      const fill = (t: string) => t.replace(/\{(\w+)\}/g, (m, k: string) => slots[k] ?? m);
      const howMany = 1 + Math.floor(r() * Math.min(3, pool.length));
      const chosen: Scenario[] = [];
      while (chosen.length < howMany) {
        const s = pick(r, pool);
        if (!chosen.includes(s)) chosen.push(s);
      }
      const messages: GeneratedExample['messages'] = [];
      if (r() < 0.35) messages.push({ role: 'system', content: pick(r, SYSTEM_PROMPTS) });
      for (const s of chosen) {
        // memory scenarios need all their turns (the later ones refer to the earlier); others may stop early
        const turns = category === 'memory_context' ? s.turns.length : 1 + Math.floor(r() * s.turns.length);
        for (const t of s.turns.slice(0, turns)) {
          messages.push({ role: 'user', content: fill(pick(r, t.q)) });
          messages.push({ role: 'assistant', content: fill(t.a) });
        }
      }
      yield { category, messages, scenarios: chosen.map((s) => s.id) };
    }
  }
}

export class GeneratedReader implements SourceReader {
  constructor(
    readonly name: string,
    private readonly opts: { seed: number; perCategory: number; categories: readonly Category[] },
    readonly review: boolean,
  ) {}

  async *read(ctx: ReadContext): AsyncIterable<Candidate> {
    // the lineage of generated data is the generator's content and its parameters
    ctx.input({ file: `generator:seed=${this.opts.seed}`, sha256: sha256(canonicalJson({ opts: this.opts, scenarios: SCENARIOS, slots: SLOTS, system: SYSTEM_PROMPTS })) });
    let i = 0;
    for (const ex of generateExamples(this.opts.seed, this.opts.perCategory, this.opts.categories)) {
      i++;
      yield {
        origin: { source: this.name, file: `generator:seed=${this.opts.seed}`, line: i },
        raw: ex,
        value: { messages: ex.messages, category: ex.category, metadata: { generated: ex.scenarios.join('+') } },
      };
    }
  }
}
