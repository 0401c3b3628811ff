// Cleaning: Unicode normalization, whitespace and control characters, and scrubbing of secrets and
// personal data (API keys, tokens, emails, IPs, home paths), counted by kind for the report.
export const SCRUB_KINDS = ['private_key', 'api_key', 'jwt', 'bearer_token', 'secret_assignment', 'email', 'ipv4', 'ipv6', 'home_path'] as const;
export type ScrubKind = (typeof SCRUB_KINDS)[number];
export type ScrubCounts = Record<ScrubKind, number>;

export const emptyScrubCounts = (): ScrubCounts => Object.fromEntries(SCRUB_KINDS.map((k) => [k, 0])) as ScrubCounts;

interface Rule {
  kind: ScrubKind;
  re: RegExp;
  replace: string | ((m: string, ...g: string[]) => string);
  /** a cheap test that must pass before the (slower) regex runs */
  hint: (s: string) => boolean;
}

// Order matters: keys inside URLs or assignments are scrubbed before the generic rules see them.
const RULES: Rule[] = [
  { kind: 'private_key', hint: (s) => s.includes('-----BEGIN'), re: /-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]*?-----END [A-Z ]*PRIVATE KEY-----/g, replace: '<PRIVATE_KEY>' },
  {
    kind: 'api_key',
    hint: (s) => /sk-|ghp_|gho_|github_pat_|AKIA|xox[abpr]-|AIza|glpat-|hf_/.test(s),
    re: /\b(?:sk-(?:proj-|ant-)?[A-Za-z0-9_-]{20,}|gh[pousr]_[A-Za-z0-9]{30,}|github_pat_[A-Za-z0-9_]{40,}|AKIA[0-9A-Z]{16}|xox[abpr]-[A-Za-z0-9-]{10,}|AIza[0-9A-Za-z_-]{35}|glpat-[A-Za-z0-9_-]{20,}|hf_[A-Za-z0-9]{30,})\b/g,
    replace: '<API_KEY>',
  },
  { kind: 'jwt', hint: (s) => s.includes('eyJ'), re: /\beyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\b/g, replace: '<JWT>' },
  { kind: 'bearer_token', hint: (s) => /bearer/i.test(s), re: /\b(Bearer)\s+[A-Za-z0-9._~+/=-]{16,}/gi, replace: (_m, b: string) => `${b} <TOKEN>` },
  {
    kind: 'secret_assignment',
    hint: (s) => /(?:password|passwd|secret|token|api[_-]?key|cookie)/i.test(s),
    re: /\b((?:[A-Za-z_]*(?:password|passwd|secret|token|api[_-]?key)|cookie)["']?\s*(?:[:=]|=>)\s*["']?)(?!<)([^\s"',;}{)]{8,})/gi,
    replace: (_m, k: string) => `${k}<SECRET>`,
  },
  { kind: 'email', hint: (s) => s.includes('@'), re: /\b[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}\b/g, replace: '<EMAIL>' },
  {
    kind: 'ipv4',
    hint: (s) => /\d\.\d+\.\d+\.\d/.test(s),
    re: /(?<![\d.])(?:(?:25[0-5]|2[0-4]\d|1?\d?\d)\.){3}(?:25[0-5]|2[0-4]\d|1?\d?\d)(?![\d.])/g,
    replace: (m: string) => (m === '127.0.0.1' || m === '0.0.0.0' ? m : '<IP>'),
  },
  {
    kind: 'ipv6',
    hint: (s) => s.includes('::') || /[0-9a-f]{1,4}:[0-9a-f]{1,4}:[0-9a-f]{1,4}:/i.test(s),
    re: /(?<![\w:])(?:[0-9a-fA-F]{1,4}:){7}[0-9a-fA-F]{1,4}(?![\w:])|(?<![\w:])(?:[0-9a-fA-F]{1,4}:){1,6}:(?:[0-9a-fA-F]{1,4}:){0,5}[0-9a-fA-F]{1,4}(?![\w:])/g,
    replace: '<IP>',
  },
  {
    kind: 'home_path',
    hint: (s) => /\/home\/|\/Users\/|\\Users\\/.test(s),
    re: /(\/home\/|\/Users\/|[A-Za-z]:\\Users\\)(?!<USER>)[A-Za-z0-9._-]+/g,
    replace: (_m, p: string) => `${p}<USER>`,
  },
];

/** Replaces secrets and personal data in `s`, adding what it replaced to `counts`. */
export function scrub(s: string, counts: ScrubCounts): string {
  for (const r of RULES) {
    if (!r.hint(s)) continue;
    s = s.replace(r.re, (...args: unknown[]) => {
      const m = args[0] as string;
      const out = typeof r.replace === 'string' ? r.replace : r.replace(m, ...(args.slice(1).filter((a) => typeof a === 'string') as string[]));
      if (out !== m) counts[r.kind]++;
      return out;
    });
  }
  return s;
}

// C0/C1 controls except \t and \n, zero-width characters, BOM, and the bidi overrides (the last are a
// way to hide text in what a reviewer sees)
const CONTROL = /[\u0000-\u0008\u000B\u000C\u000E-\u001F\u007F-\u009F\u200B-\u200D\u2060\uFEFF\u202A-\u202E\u2066-\u2069]/g;
const NEEDS_WORK = /[\r\u0000-\u0008\u000B\u000C\u000E-\u001F\u007F-\u009F\u200B-\u200D\u2060\uFEFF\u202A-\u202E\u2066-\u2069]|[ \t]\n|\n{3}|^\s|\s$/;

/**
 * Normalizes one message's text: Unicode form, line ends, control characters, trailing spaces, runs of
 * blank lines, outer whitespace. Indentation inside lines is kept (code depends on it).
 */
export function normalizeText(s: string, form: 'NFC' | 'NFKC'): string {
  // most text is already NFC ASCII: skip normalize() when every code unit is ASCII
  // eslint-disable-next-line no-control-regex
  if (/[^\x00-\x7f]/.test(s)) s = s.normalize(form);
  if (!NEEDS_WORK.test(s)) return s;
  return s
    .replace(/\r\n?/g, '\n')
    .replace(CONTROL, '')
    .replace(/[ \t]+\n/g, '\n')
    .replace(/\n{3,}/g, '\n\n')
    .trim();
}

export interface CleanOptions {
  normalization: 'NFC' | 'NFKC';
  scrub: boolean;
}

/** Cleans every message of an example in place of a copy; the counts gather what was scrubbed. */
export function cleanMessages<M extends { role: unknown; content: unknown }>(messages: M[], opts: CleanOptions, counts: ScrubCounts): M[] {
  return messages.map((m) => {
    if (typeof m.content !== 'string') return m;
    let c = normalizeText(m.content, opts.normalization);
    if (opts.scrub) c = scrub(c, counts);
    return { ...m, content: c };
  });
}
