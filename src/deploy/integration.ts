// Integration testing before promotion: a suite (JSON or YAML) of conversations with the properties the
// answer must have (contains / not_contains, regex / not_regex, a JSON schema, max latency, max tokens),
// run against a candidate version through the serving engine (real generation); the result is stored
// with the version, and promoteWithTests refuses a promotion when a case fails, listing each failure.
import { basename } from 'node:path';
import { z } from 'zod';
import { formatPath } from '../data/errors.js';
import { readConfigObject } from '../train/config.js';
import type { LocateField } from '../train/config.js';
import { checkJsonSchema, parseJsonOutput, validateJsonSchema } from './integration-schema.js';
import type { JsonSchema } from './integration-schema.js';
import type { Registry } from './registry.js';
import type { HistoryEntry } from './registry.js';
import { ServeMessage } from './serving.js';
import type { ServeRequest, ServeResponse } from './serving.js';

export class SuiteError extends Error {
  constructor(
    message: string,
    readonly file?: string,
    readonly issues: { path: string; message: string; line?: number }[] = [],
  ) {
    super(message);
    this.name = 'SuiteError';
  }
}

const oneOrMany = z.union([z.string().min(1), z.array(z.string().min(1)).min(1)]).transform((v) => (Array.isArray(v) ? v : [v]));

const regexes = z
  .union([z.string().min(1), z.array(z.string().min(1)).min(1)])
  .superRefine((v, ctx) => {
    (Array.isArray(v) ? v : [v]).forEach((r, i) => {
      try {
        toRegExp(r);
      } catch (e) {
        ctx.addIssue({ code: 'custom', path: Array.isArray(v) ? [i] : [], message: `not a valid regular expression: ${(e as Error).message}` });
      }
    });
  })
  .transform((v) => (Array.isArray(v) ? v : [v]));

/** `/body/flags` or a bare pattern (unicode mode). */
function toRegExp(s: string): RegExp {
  const m = /^\/(.*)\/([dgimsuvy]*)$/s.exec(s);
  return m ? new RegExp(m[1], m[2]) : new RegExp(s, 'u');
}

export const Expectation = z.strictObject({
  /** every string must appear in the answer */
  contains: oneOrMany.optional(),
  /** none may appear */
  not_contains: oneOrMany.optional(),
  /** compare contains / not_contains ignoring case */
  ignore_case: z.boolean().default(false),
  /** every pattern must match (`/body/flags` or a bare pattern) */
  regex: regexes.optional(),
  not_regex: regexes.optional(),
  /** the answer (or its ```json block) is JSON valid against this schema (subset: integration-schema.ts) */
  json_schema: z
    .unknown()
    .superRefine((s, ctx) => {
      for (const p of checkJsonSchema(s)) ctx.addIssue({ code: 'custom', message: p });
    })
    .optional(),
  max_latency_ms: z.number().positive().optional(),
  /** new tokens of the answer at most */
  max_tokens: z.number().int().min(0).optional(),
  /** the answer ended by itself (a stop token or string), not by max_new_tokens */
  finished: z.boolean().optional(),
});
export type Expectation = z.output<typeof Expectation>;

const CaseSchema = z.strictObject({
  name: z.string().min(1),
  messages: z.array(ServeMessage).min(1),
  max_new_tokens: z.number().int().min(1).optional(),
  temperature: z.number().min(0).optional(),
  seed: z.number().int().min(0).optional(),
  expect: Expectation,
});

export const SuiteSchema = z
  .strictObject({
    name: z.string().min(1).optional(),
    defaults: z.strictObject({ max_new_tokens: z.number().int().min(1).default(64), temperature: z.number().min(0).default(0), max_latency_ms: z.number().positive().optional() }).default({ max_new_tokens: 64, temperature: 0 }),
    cases: z.array(CaseSchema).min(1, 'a suite needs at least one case'),
  })
  .superRefine((s, ctx) => {
    const seen = new Map<string, number>();
    s.cases.forEach((c, i) => {
      if (seen.has(c.name)) ctx.addIssue({ code: 'custom', path: ['cases', i, 'name'], message: `duplicate case name '${c.name}' (also cases[${seen.get(c.name)}])` });
      seen.set(c.name, i);
    });
  });
export type SuiteInput = z.input<typeof SuiteSchema>;
export type Suite = z.output<typeof SuiteSchema> & { name: string };

/** Validates a suite object; errors list each field path (and the YAML line when located). */
export function parseSuite(input: unknown, opts: { file?: string; locate?: LocateField } = {}): Suite {
  const r = SuiteSchema.safeParse(input);
  if (!r.success) {
    const issues = r.error.issues.map((i) => ({ path: formatPath(i.path), message: i.message, line: opts.locate?.(i.path as PropertyKey[])?.line }));
    const where = (i: (typeof issues)[number]) => (opts.file ? `${opts.file}${i.line ? `:${i.line}` : ''}: ` : '');
    throw new SuiteError(`invalid test suite:\n${issues.map((i) => `  ${where(i)}${i.path}: ${i.message}`).join('\n')}`, opts.file, issues);
  }
  return { ...r.data, name: r.data.name ?? (opts.file ? basename(opts.file).replace(/\.(json|ya?ml)$/i, '') : 'suite') };
}

/** Reads a suite file: YAML for .yaml / .yml, JSON otherwise. */
export function loadSuite(file: string): Suite {
  let value: unknown;
  let locate: LocateField | undefined;
  try {
    ({ value, locate } = readConfigObject(file));
  } catch (e) {
    throw new SuiteError((e as Error).message, file);
  }
  return parseSuite(value, { file, locate });
}

export interface CaseFailure {
  check: 'contains' | 'not_contains' | 'regex' | 'not_regex' | 'json_schema' | 'max_latency_ms' | 'max_tokens' | 'finished' | 'error';
  message: string;
}

export interface CaseResult {
  name: string;
  passed: boolean;
  failures: CaseFailure[];
  output: string | null;
  latencyMs: number | null;
  completionTokens: number | null;
  finishReason: string | null;
}

export interface SuiteResult {
  format: 'starweave-suite-result/1';
  suite: string;
  version: string | null;
  passed: boolean;
  total: number;
  failed: number;
  cases: CaseResult[];
  startedAt: string;
  seconds: number;
}

/** The properties a response breaks (empty: the case passes). */
export function checkResponse(e: Expectation, r: Pick<ServeResponse, 'text' | 'latencyMs' | 'completionTokens' | 'finishReason'>, defaultMaxLatencyMs?: number): CaseFailure[] {
  const out: CaseFailure[] = [];
  const norm = (s: string) => (e.ignore_case ? s.toLowerCase() : s);
  const text = norm(r.text);
  const quote = (s: string) => JSON.stringify(s.length > 60 ? s.slice(0, 57) + '...' : s);
  for (const s of e.contains ?? []) if (!text.includes(norm(s))) out.push({ check: 'contains', message: `the answer does not contain ${quote(s)}` });
  for (const s of e.not_contains ?? []) if (text.includes(norm(s))) out.push({ check: 'not_contains', message: `the answer contains ${quote(s)}` });
  for (const p of e.regex ?? []) if (!toRegExp(p).test(r.text)) out.push({ check: 'regex', message: `the answer does not match ${p}` });
  for (const p of e.not_regex ?? []) if (toRegExp(p).test(r.text)) out.push({ check: 'not_regex', message: `the answer matches ${p}` });
  if (e.json_schema !== undefined) {
    const j = parseJsonOutput(r.text);
    if (!j.ok) out.push({ check: 'json_schema', message: `the answer is ${j.error}` });
    else {
      const errs = validateJsonSchema(e.json_schema as JsonSchema, j.value);
      if (errs.length) out.push({ check: 'json_schema', message: `the answer's JSON breaks the schema: ${errs.slice(0, 5).join('; ')}${errs.length > 5 ? ` (+${errs.length - 5} more)` : ''}` });
    }
  }
  const maxLat = e.max_latency_ms ?? defaultMaxLatencyMs;
  if (maxLat !== undefined && r.latencyMs > maxLat) out.push({ check: 'max_latency_ms', message: `latency ${r.latencyMs.toFixed(1)} ms > ${maxLat} ms` });
  if (e.max_tokens !== undefined && r.completionTokens > e.max_tokens) out.push({ check: 'max_tokens', message: `${r.completionTokens} new tokens > ${e.max_tokens}` });
  if (e.finished === true && r.finishReason === 'length') out.push({ check: 'finished', message: 'the answer was cut at max_new_tokens' });
  return out;
}

/** Anything that answers a conversation: ServingEngine.generate bound to a version, or a router. */
export type Generator = (request: ServeRequest) => Promise<ServeResponse>;

/** Runs every case (one at a time, so latencies are not inflated by each other) and checks its answer. */
export async function runSuite(suite: Suite, generate: Generator, version: string | null = null): Promise<SuiteResult> {
  const startedAt = new Date().toISOString();
  const t0 = performance.now();
  const cases: CaseResult[] = [];
  for (const c of suite.cases) {
    try {
      const r = await generate({
        messages: c.messages,
        maxNewTokens: c.max_new_tokens ?? suite.defaults.max_new_tokens,
        temperature: c.temperature ?? suite.defaults.temperature,
        seed: c.seed ?? 0,
      });
      const failures = checkResponse(c.expect, r, suite.defaults.max_latency_ms);
      cases.push({ name: c.name, passed: !failures.length, failures, output: r.text, latencyMs: r.latencyMs, completionTokens: r.completionTokens, finishReason: r.finishReason });
    } catch (e) {
      cases.push({ name: c.name, passed: false, failures: [{ check: 'error', message: e instanceof Error ? e.message : String(e) }], output: null, latencyMs: null, completionTokens: null, finishReason: null });
    }
  }
  const failed = cases.filter((c) => !c.passed).length;
  return { format: 'starweave-suite-result/1', suite: suite.name, version, passed: failed === 0, total: cases.length, failed, cases, startedAt, seconds: (performance.now() - t0) / 1000 };
}

/** The failing cases and why, one line per failure. */
export function formatFailures(r: SuiteResult): string {
  return r.cases
    .filter((c) => !c.passed)
    .flatMap((c) => c.failures.map((f) => `  ${c.name}: ${f.check}: ${f.message}`))
    .join('\n');
}

/** Something that serves registered versions (the ServingEngine). */
export interface VersionServer {
  readonly registry: Registry;
  generate(spec: string, request: ServeRequest): Promise<ServeResponse>;
}

/** Runs the suite against a version and stores the result with it (versions/ID/tests/, the index, the audit log). */
export async function testVersion(server: VersionServer, spec: string, suite: Suite | string): Promise<SuiteResult> {
  const s = typeof suite === 'string' ? loadSuite(suite) : suite;
  const id = server.registry.resolve(spec);
  const result = await runSuite(s, (req) => server.generate(id, req), id);
  await server.registry.recordTest(id, result, result);
  return result;
}

export const PromoteWithTestsParams = z.strictObject({
  version: z.string().min(1),
  channel: z.string().min(1),
  /** a suite file (JSON or YAML) */
  suite: z.string().min(1),
  reason: z.string().optional(),
});

export interface PromoteWithTestsResult {
  promoted: boolean;
  result: SuiteResult;
  entry: HistoryEntry | null;
  /** when refused: each failing case and why */
  failures: string | null;
}

/** Tests a version with the suite, then promotes it to the channel only when every case passed. */
export async function promoteWithTests(server: VersionServer, params: Omit<z.input<typeof PromoteWithTestsParams>, 'suite'> & { suite: string | Suite }): Promise<PromoteWithTestsResult> {
  const { version, channel, suite, reason } = params;
  const result = await testVersion(server, version, suite);
  if (!result.passed) return { promoted: false, result, entry: null, failures: `${result.version} failed ${result.failed} of ${result.total} cases of suite ${result.suite}; not promoted to ${channel}:\n${formatFailures(result)}` };
  const entry = await server.registry.promote({ version: result.version!, channel, reason });
  return { promoted: true, result, entry, failures: null };
}
