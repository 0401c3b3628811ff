// A/B routing of a channel: each generate request goes to the channel's version (control) or to a
// candidate version, by a stable hash of its request key, so a user (key) keeps seeing the same version;
// raising the candidate's share only moves keys from control to candidate, never back. Per version it
// records latency, tokens/s, errors and user ratings (rate(requestId, score)), feeds the monitor, and
// reports the comparison: requests, error rate, latency p50/p95, tokens/s, mean rating with a 95%
// interval, and the differences tested (error rates: two-proportion z; ratings and latency: Welch's t).
// The control is the channel's version at each request, so a rollback takes effect on the next request.
import { createHash, randomUUID } from 'node:crypto';
import { z } from 'zod';
import { wilson95 } from '../eval/review.js';
import type { Monitor } from './monitor.js';
import { meanCi95, quantile, twoProportionZTest, welchTTest } from './router-stats.js';
import type { TestResult } from './router-stats.js';
import { ServeRequest } from './serving.js';
import type { ServeResponse, ServingEngine } from './serving.js';

export const RouterConfig = z.strictObject({
  /** the channel served; its current version is the control */
  channel: z.string().min(1),
  /** the candidate version (id, tag, hash prefix or @channel such as @canary); none: all traffic to control */
  candidate: z.string().min(1).optional(),
  /** the share of keys routed to the candidate */
  candidateShare: z.number().min(0).max(1).default(0.1),
  /** salt of the key hash: a new salt reshuffles which keys see the candidate */
  salt: z.string().default(''),
});
export type RouterConfig = z.input<typeof RouterConfig>;

export const RouteRequest = ServeRequest.extend({
  /** the sticky key (a user or session id); a random one when absent */
  key: z.string().min(1).optional(),
});
export type RouteRequest = z.input<typeof RouteRequest>;

export const RateParams = z.strictObject({ requestId: z.string().min(1), score: z.number().finite() });

export type Arm = 'control' | 'candidate';

export interface RouteResponse extends ServeResponse {
  requestId: string;
  arm: Arm;
  key: string;
}

export class RouteError extends Error {
  constructor(
    message: string,
    readonly requestId: string,
    readonly version: string | null,
    readonly arm: Arm,
    cause: unknown,
  ) {
    super(message, { cause });
    this.name = 'RouteError';
  }
}

/** The key's bucket in [0, 1): the first 32 bits of sha256(salt NUL key). */
export function keyBucket(key: string, salt = ''): number {
  return createHash('sha256').update(`${salt}\0${key}`).digest().readUInt32BE(0) / 2 ** 32;
}

const CAP = 100_000;
const push = (a: number[], v: number) => {
  a.push(v);
  if (a.length > CAP) a.shift();
};

interface Tally {
  arm: Arm;
  requests: number;
  errors: number;
  latencyMs: number[];
  decodeTokensPerSec: number[];
  completionTokens: number;
  ratings: number[];
}

export interface VersionReport {
  version: string;
  arm: Arm;
  requests: number;
  errors: number;
  errorRate: number | null;
  errorRateCi95: [number, number] | null;
  latencyMs: { p50: number | null; p95: number | null; mean: number | null };
  decodeTokensPerSec: { mean: number | null; p50: number | null };
  completionTokens: number;
  rating: { n: number; mean: number | null; ci95: [number, number] | null };
}

export interface AbReport {
  channel: string;
  control: string | null;
  candidate: string | null;
  candidateShare: number;
  versions: VersionReport[];
  /** candidate − control, when both versions have data (null where a test does not apply) */
  comparison: { errorRate: TestResult | null; latencyMs: TestResult | null; rating: TestResult | null } | null;
}

export class Router {
  private config: z.output<typeof RouterConfig>;
  private readonly tallies = new Map<string, Tally>();
  private readonly requests = new Map<string, string>();
  readonly monitor: Monitor | null;

  constructor(
    readonly engine: ServingEngine,
    config: RouterConfig,
    opts: { monitor?: Monitor } = {},
  ) {
    this.config = RouterConfig.parse(config);
    this.monitor = opts.monitor ?? null;
  }

  get settings(): z.output<typeof RouterConfig> {
    return { ...this.config };
  }

  /** Changes the split (the candidate, null for none; its share; the salt); tallies are kept. */
  configure(change: Partial<Omit<RouterConfig, 'candidate'>> & { candidate?: string | null }): void {
    const next: Record<string, unknown> = { ...this.config };
    for (const [k, v] of Object.entries(change)) {
      if (v === null) delete next[k];
      else if (v !== undefined) next[k] = v;
    }
    this.config = RouterConfig.parse(next);
  }

  /** The arm and version a key goes to now. */
  assign(key: string): { arm: Arm; version: string } {
    const c = this.config;
    const reg = this.engine.registry;
    const candidate = c.candidate ? reg.resolve(c.candidate) : null;
    const control = reg.resolve(`@${c.channel}`);
    if (candidate && candidate !== control && keyBucket(key, c.salt) < c.candidateShare) return { arm: 'candidate', version: candidate };
    return { arm: 'control', version: control };
  }

  /** Serves a request on the key's version; failures are counted and thrown as RouteError (with the requestId). */
  async generate(request: RouteRequest): Promise<RouteResponse> {
    const { key: given, ...rest } = RouteRequest.parse(request);
    const key = given ?? randomUUID();
    const requestId = randomUUID();
    const t0 = performance.now();
    let route: { arm: Arm; version: string | null } = { arm: 'control', version: null };
    try {
      route = this.assign(key);
      const r = await this.engine.generate(route.version!, rest);
      const t = this.tally(route.version!, route.arm);
      t.requests++;
      push(t.latencyMs, r.latencyMs);
      if (r.decodeTokensPerSec !== null) push(t.decodeTokensPerSec, r.decodeTokensPerSec);
      t.completionTokens += r.completionTokens;
      this.remember(requestId, route.version!);
      this.monitor?.record({ version: route.version!, ok: true, latencyMs: r.latencyMs, completionTokens: r.completionTokens });
      return { ...r, requestId, arm: route.arm, key };
    } catch (e) {
      const latencyMs = performance.now() - t0;
      const message = e instanceof Error ? e.message : String(e);
      if (route.version) {
        const t = this.tally(route.version, route.arm);
        t.requests++;
        t.errors++;
        this.monitor?.record({ version: route.version, ok: false, latencyMs, error: message });
      }
      throw new RouteError(`request ${requestId} on ${route.version ?? `channel ${this.config.channel}`} (${route.arm}) failed: ${message}`, requestId, route.version, route.arm, e);
    }
  }

  /** A user's rating of a served answer (any scale; higher is better). */
  rate(requestId: string, score: number): { version: string } {
    const p = RateParams.parse({ requestId, score });
    const version = this.requests.get(p.requestId);
    if (!version) throw new Error(`rate: no served request '${p.requestId}' (unknown, failed, or older than the last ${CAP} requests)`);
    this.tallies.get(version)!.ratings.push(p.score);
    return { version };
  }

  /** The comparison of the versions served so far. */
  report(): AbReport {
    const c = this.config;
    const reg = this.engine.registry;
    const safe = (spec: string | undefined) => {
      if (!spec) return null;
      try {
        return reg.resolve(spec);
      } catch {
        return null;
      }
    };
    const control = safe(`@${c.channel}`);
    const candidate = safe(c.candidate);
    const versions: VersionReport[] = [...this.tallies].map(([version, t]) => {
      const lat = t.latencyMs;
      const ok = t.requests - t.errors;
      return {
        version,
        arm: t.arm,
        requests: t.requests,
        errors: t.errors,
        errorRate: t.requests ? t.errors / t.requests : null,
        errorRateCi95: wilson95(t.errors, t.requests),
        latencyMs: { p50: quantile(lat, 0.5), p95: quantile(lat, 0.95), mean: ok && lat.length ? lat.reduce((a, b) => a + b, 0) / lat.length : null },
        decodeTokensPerSec: { mean: meanCi95(t.decodeTokensPerSec).mean, p50: quantile(t.decodeTokensPerSec, 0.5) },
        completionTokens: t.completionTokens,
        rating: meanCi95(t.ratings),
      };
    });
    const a = control ? this.tallies.get(control) : undefined;
    const b = candidate ? this.tallies.get(candidate) : undefined;
    const comparison =
      a && b && control !== candidate
        ? { errorRate: twoProportionZTest(a.errors, a.requests, b.errors, b.requests), latencyMs: welchTTest(a.latencyMs, b.latencyMs), rating: welchTTest(a.ratings, b.ratings) }
        : null;
    return { channel: c.channel, control, candidate, candidateShare: c.candidateShare, versions, comparison };
  }

  private tally(version: string, arm: Arm): Tally {
    let t = this.tallies.get(version);
    if (!t) {
      t = { arm, requests: 0, errors: 0, latencyMs: [], decodeTokensPerSec: [], completionTokens: 0, ratings: [] };
      this.tallies.set(version, t);
    }
    t.arm = arm;
    return t;
  }

  private remember(requestId: string, version: string): void {
    this.requests.set(requestId, version);
    if (this.requests.size > CAP) this.requests.delete(this.requests.keys().next().value!);
  }
}
