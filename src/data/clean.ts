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
  /** the scanFlags() bit that the hint needs (see there); 0: always ask the hint */
  flag: number;
}

// Bits of scanFlags(): what a string may contain. Each scrub bit is a necessary condition for its rule
// to change the string (for its hint to be true; for email, for its regex to match), so a clear bit
// skips the hint and the regex. Case-insensitive hints are matched with ASCII case folding, which is
// what a non-unicode /i regex does for ASCII patterns.
const F_NONASCII = 1;
const F_NEEDS_WORK = 1 << 1; // for an ASCII string: exactly NEEDS_WORK.test(s)
const F_ESCAPE = 1 << 2; // JSON.stringify(s) escapes something: '"', '\\', U+0000..U+001F (or non-ASCII: maybe)
const F_PK = 1 << 3; // --
const F_API = 1 << 4; // sk-  xox[abpr]-  glpat-  ghp_  gho_  github_  hf_  AKIA  AIza
const F_JWT = 1 << 5; // eyJ
const F_BEARER = 1 << 6; // bearer (any case)
const F_SECRET = 1 << 7; // passw, secr, token, cookie, api[_-]?k (any case)
const F_EMAIL = 1 << 8; // [A-Za-z0-9._%+-]@[A-Za-z0-9-]+\.[A-Za-z0-9-]
const F_IPV4 = 1 << 9; // digit . digit
const F_IPV6 = 1 << 10; // :: or hex : hex (any case)
const F_HOME = 1 << 11; // /home/  /Users/  \Users\

// the characters at which scanFlags looks closer
const K_DASH = 1;
const K_UNDERSCORE = 2;
const K_A = 3;
const K_J = 4;
const K_B = 5;
const K_W = 6;
const K_C = 7;
const K_K = 8;
const K_AT = 9;
const K_DOT = 10;
const K_COLON = 11;
const K_SLASH = 12;
const K_BACKSLASH = 13;
const K_QUOTE = 14;
const K_NL = 15;
const K_TAB = 16;
const K_CTRL = 17;
const KIND = new Uint8Array(128);
for (let c = 0; c < 32; c++) KIND[c] = K_CTRL;
KIND[127] = K_CTRL;
KIND[9] = K_TAB;
KIND[10] = K_NL;
const code = (ch: string) => ch.charCodeAt(0);
KIND[code('-')] = K_DASH;
KIND[code('_')] = K_UNDERSCORE;
KIND[code('A')] = K_A;
KIND[code('J')] = K_J;
for (const [ch, k] of [['b', K_B], ['w', K_W], ['c', K_C], ['k', K_K]] as const) {
  KIND[code(ch)] = k;
  KIND[code(ch.toUpperCase())] = k;
}
KIND[code('@')] = K_AT;
KIND[code('.')] = K_DOT;
KIND[code(':')] = K_COLON;
KIND[code('/')] = K_SLASH;
KIND[code('\\')] = K_BACKSLASH;
KIND[code('"')] = K_QUOTE;

const isDigit = (c: number) => c >= 48 && c <= 57;
const isHex = (c: number) => (c >= 48 && c <= 57) || ((c | 32) >= 97 && (c | 32) <= 102);
const isAsciiSpace = (c: number) => c === 32 || (c >= 9 && c <= 13);
/** [A-Za-z0-9-] */
const isDomainChar = (c: number) => (c >= 48 && c <= 57) || ((c | 32) >= 97 && (c | 32) <= 122) || c === 45;
/** [A-Za-z0-9._%+-] */
const isEmailLocal = (c: number) => isDomainChar(c) || c === 46 || c === 95 || c === 37 || c === 43;
/** b has `w` (ASCII) at i (before 0 is undefined, past the end are zero bytes: no match) */
function at(b: Uint8Array, i: number, w: string): boolean {
  for (let j = 0; j < w.length; j++) if (b[i + j] !== w.charCodeAt(j)) return false;
  return true;
}
/** b has `w` (lowercase ASCII letters and other ASCII) at i, letters in either case */
function atFold(b: Uint8Array, i: number, w: string): boolean {
  for (let j = 0; j < w.length; j++) {
    const c = b[i + j];
    const d = w.charCodeAt(j);
    if (c !== d && !(d >= 97 && d <= 122 && (c | 32) === d)) return false;
  }
  return true;
}

let scratch = Buffer.allocUnsafe(1 << 16);

/**
 * One pass over `s`: whether it has non-ASCII characters, whether (if ASCII) normalizeText has work to
 * do, whether JSON.stringify escapes anything, and for each scrub rule whether it could change s (the
 * F_ bits). The pass runs over the UTF-8 bytes (a typed-array loop is faster than charCodeAt): every
 * condition is about ASCII characters and their neighbours, and ASCII characters are the same bytes
 * with the same neighbours there (a non-ASCII character becomes bytes >= 0x80, which match nothing).
 */
export function scanFlags(s: string): number {
  if (s.length === 0) return 0;
  const need = s.length * 3 + 8;
  // the scratch buffer grows to 1 MiB at most; a longer text gets a buffer of its own
  if (need > scratch.length && need <= 1 << 20) scratch = Buffer.allocUnsafe(need);
  const b = need <= scratch.length ? scratch : Buffer.allocUnsafe(need);
  const n = b.write(s, 0, 'utf8');
  b.fill(0, n, n + 8); // what the look-aheads see past the end
  let f = n === s.length ? 0 : F_NONASCII | F_ESCAPE;
  if (isAsciiSpace(b[0]) || isAsciiSpace(b[n - 1])) f |= F_NEEDS_WORK;
  let prev = 0;
  let newlines = 0;
  for (let i = 0; i < n; i++) {
    const c = b[i];
    if (c >= 128) {
      f |= F_NONASCII | F_ESCAPE;
      prev = c;
      newlines = 0;
      continue;
    }
    const k = KIND[c];
    if (k !== 0) {
      switch (k) {
        case K_NL:
          f |= F_ESCAPE;
          if (prev === 32 || prev === 9 || ++newlines >= 3) f |= F_NEEDS_WORK;
          prev = c;
          continue;
        case K_TAB:
          f |= F_ESCAPE;
          break;
        case K_CTRL:
          f |= c === 127 ? F_NEEDS_WORK : F_NEEDS_WORK | F_ESCAPE;
          break;
        case K_QUOTE:
          f |= F_ESCAPE;
          break;
        case K_DASH:
          if (b[i + 1] === 45) f |= F_PK;
          if (at(b, i - 2, 'sk') || at(b, i - 5, 'glpat') || (at(b, i - 4, 'xox') && (prev === 97 || prev === 98 || prev === 112 || prev === 114))) f |= F_API;
          break;
        case K_UNDERSCORE:
          if (at(b, i - 3, 'ghp') || at(b, i - 3, 'gho') || at(b, i - 6, 'github') || at(b, i - 2, 'hf')) f |= F_API;
          break;
        case K_A:
          if (at(b, i + 1, 'KIA') || at(b, i + 1, 'Iza')) f |= F_API;
          break;
        case K_J:
          if (at(b, i - 2, 'ey')) f |= F_JWT;
          break;
        case K_B:
          if (atFold(b, i + 1, 'earer')) f |= F_BEARER;
          break;
        case K_W: // passw(ord|d)
          if (atFold(b, i - 4, 'pass')) f |= F_SECRET;
          break;
        case K_C: // secret
          if (atFold(b, i - 2, 'secret')) f |= F_SECRET;
          break;
        case K_K: // token, cookie, api[_-]?key
          if (atFold(b, i - 2, 'token') || atFold(b, i - 3, 'cookie') || atFold(b, i - 3, 'api') || atFold(b, i - 4, 'api_') || atFold(b, i - 4, 'api-')) f |= F_SECRET;
          break;
        case K_AT:
          // the email regex: [A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}
          if (isEmailLocal(prev)) {
            let j = i + 1;
            while (isDomainChar(b[j])) j++;
            if (j > i + 1 && b[j] === 46 && isDomainChar(b[j + 1])) f |= F_EMAIL;
          }
          break;
        case K_DOT:
          if (isDigit(prev) && isDigit(b[i + 1])) f |= F_IPV4;
          break;
        case K_COLON: {
          const d = b[i + 1];
          if (d === 58 || (isHex(prev) && isHex(d))) f |= F_IPV6;
          break;
        }
        case K_SLASH:
          if (at(b, i + 1, 'home/') || at(b, i + 1, 'Users/')) f |= F_HOME;
          break;
        case K_BACKSLASH:
          f |= F_ESCAPE;
          if (at(b, i + 1, 'Users\\')) f |= F_HOME;
          break;
      }
    }
    newlines = 0;
    prev = c;
  }
  return f;
}

// Order matters: keys inside URLs or assignments are scrubbed before the generic rules see them.
const RULES: Rule[] = [
  { kind: 'private_key',
    flag: F_PK, hint: (s) => s.includes('-----BEGIN'), re: /-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]*?-----END [A-Z ]*PRIVATE KEY-----/g, replace: '<PRIVATE_KEY>' },
  {
    kind: 'api_key',
    flag: F_API,
    hint: (s) => /sk-|ghp_|gho_|github_pat_|AKIA|xox[abpr]-|AIza|glpat-|hf_/.test(s),
    re: /\b(?:sk-(?:proj-|ant-)?[A-Za-z0-9_-]{20,}|gh[pousr]_[A-Za-z0-9]{30,}|github_pat_[A-Za-z0-9_]{40,}|AKIA[0-9A-Z]{16}|xox[abpr]-[A-Za-z0-9-]{10,}|AIza[0-9A-Za-z_-]{35}|glpat-[A-Za-z0-9_-]{20,}|hf_[A-Za-z0-9]{30,})\b/g,
    replace: '<API_KEY>',
  },
  { kind: 'jwt',
    flag: F_JWT, hint: (s) => s.includes('eyJ'), re: /\beyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\b/g, replace: '<JWT>' },
  { kind: 'bearer_token',
    flag: F_BEARER, hint: (s) => /bearer/i.test(s), re: /\b(Bearer)\s+[A-Za-z0-9._~+/=-]{16,}/gi, replace: (_m, b: string) => `${b} <TOKEN>` },
  {
    kind: 'secret_assignment',
    flag: F_SECRET,
    hint: (s) => /(?:password|passwd|secret|token|api[_-]?key|cookie)/i.test(s),
    re: /\b((?:[A-Za-z_]*(?:password|passwd|secret|token|api[_-]?key)|cookie)["']?\s*(?:[:=]|=>)\s*["']?)(?!<)([^\s"',;}{)]{8,})/gi,
    replace: (_m, k: string) => `${k}<SECRET>`,
  },
  { kind: 'email',
    flag: F_EMAIL, hint: (s) => s.includes('@'), re: /\b[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}\b/g, replace: '<EMAIL>' },
  {
    kind: 'ipv4',
    flag: F_IPV4,
    hint: (s) => /\d\.\d+\.\d+\.\d/.test(s),
    re: /(?<![\d.])(?:(?:25[0-5]|2[0-4]\d|1?\d?\d)\.){3}(?:25[0-5]|2[0-4]\d|1?\d?\d)(?![\d.])/g,
    replace: (m: string) => (m === '127.0.0.1' || m === '0.0.0.0' ? m : '<IP>'),
  },
  {
    kind: 'ipv6',
    flag: F_IPV6,
    hint: (s) => s.includes('::') || /[0-9a-f]{1,4}:[0-9a-f]{1,4}:[0-9a-f]{1,4}:/i.test(s),
    re: /(?<![\w:])(?:[0-9a-fA-F]{1,4}:){7}[0-9a-fA-F]{1,4}(?![\w:])|(?<![\w:])(?:[0-9a-fA-F]{1,4}:){1,6}:(?:[0-9a-fA-F]{1,4}:){0,5}[0-9a-fA-F]{1,4}(?![\w:])/g,
    replace: '<IP>',
  },
  {
    kind: 'home_path',
    flag: F_HOME,
    hint: (s) => /\/home\/|\/Users\/|\\Users\\/.test(s),
    re: /(\/home\/|\/Users\/|[A-Za-z]:\\Users\\)(?!<USER>)[A-Za-z0-9._-]+/g,
    replace: (_m, p: string) => `${p}<USER>`,
  },
];

/** Replaces secrets and personal data in `s`, adding what it replaced to `counts`. */
export function scrub(s: string, counts: ScrubCounts): string {
  return scrubFlagged(s, counts, -1);
}

/** scrub() that skips the rules whose scanFlags() bit is clear in `flags` (until a rule has replaced something). */
function scrubFlagged(s: string, counts: ScrubCounts, flags: number): string {
  for (const r of RULES) {
    if ((flags & r.flag) === 0) continue;
    if (!r.hint(s)) continue;
    // the text changes: the flags no longer describe it
    flags = -1;
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

/**
 * Cleans every message of an example in place of a copy; the counts gather what was scrubbed. With
 * `contentJson`, also sets contentJson[i] to JSON.stringify of message i's cleaned content (cheaply: the
 * cleaning scan knows whether anything needs escaping), or undefined when the content is not a string.
 */
export function cleanMessages<M extends { role: unknown; content: unknown }>(messages: M[], opts: CleanOptions, counts: ScrubCounts, contentJson?: (string | undefined)[]): M[] {
  return messages.map((m, i) => {
    if (typeof m.content !== 'string') {
      if (contentJson) contentJson[i] = undefined;
      return m;
    }
    const c = cleanText(m.content, opts, counts);
    if (contentJson) contentJson[i] = (lastFlags & F_ESCAPE) === 0 ? `"${c}"` : JSON.stringify(c);
    return { ...m, content: c };
  });
}

/** scanFlags() of the string the last cleanText() returned (-1: unknown) */
let lastFlags = -1;

/** normalizeText, then scrub when asked: the same result, with one scan deciding what can be skipped. */
export function cleanText(s: string, opts: CleanOptions, counts: ScrubCounts): string {
  let flags = scanFlags(s);
  if (flags & (F_NONASCII | F_NEEDS_WORK)) {
    const c = normalizeText(s, opts.normalization);
    if (c !== s) flags = scanFlags(c);
    s = c;
  }
  if (opts.scrub) {
    const c = scrubFlagged(s, counts, flags);
    if (c !== s) flags = -1;
    s = c;
  }
  lastFlags = flags;
  return s;
}
