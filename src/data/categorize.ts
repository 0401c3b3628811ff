// A keyword classifier for records that arrive without a category (public formats, documents). The
// records it labels carry metadata.categoryInferred, and the report counts them, so a reviewer can
// check them.
import type { Category } from './schema.js';

const CUES: Record<Category, RegExp> = {
  pattern_recognition: /\b(patterns?|anomal\w*|detect\w*|signals?|recurr\w*|periodic\w*|clusters? of|classif\w*|features?|drift|windows?|match(?:er|es|ing)?|similarity|spikes?|bursts?)\b/gi,
  system_interaction: /\b(errors?|crash\w*|config\w*|deploy\w*|nodes?|debug\w*|timeouts?|restart\w*|latency|logs?|memory usage|cpu|install\w*|upgrade\w*|cluster|nodedown|timed? out|exit\w*|fail\w*)\b/gi,
  code_understanding: /\b(defmodule|def|defp|genserver|supervisor|handle_call|handle_cast|handle_info|init\/1|function|module|code|api|spec|elixir|otp|callback|pattern.match\w*|pipe|macro|struct)\b|```/gi,
  memory_context: /\b(remember\w*|earlier|recall\w*|context|previous\w*|you said|i said|i told you|mentioned|last time|yesterday|memory|memories|episod\w*|consolidat\w*|retain\w*|retention)\b/gi,
};

export function inferCategory(messages: readonly { role: string; content: string }[]): Category {
  const text = messages.map((m) => m.content).join('\n');
  let best: Category = 'system_interaction';
  let bestScore = 0;
  const users = messages.filter((m) => m.role === 'user').length;
  for (const [cat, re] of Object.entries(CUES) as [Category, RegExp][]) {
    re.lastIndex = 0;
    let score = text.match(re)?.length ?? 0;
    if (cat === 'memory_context' && users >= 3) score += 2; // long conversations exercise context retention
    if (score > bestScore) {
      best = cat;
      bestScore = score;
    }
  }
  return best;
}
