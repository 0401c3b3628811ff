// Monitoring of served versions: per-version counters (requests, errors, new tokens) and a latency
// histogram with fixed buckets (Prometheus' cumulative `le` buckets), a JSON snapshot() for callers (the
// port hands it to Elixir), the Prometheus text exposition, and a drift alarm: over a sliding window of
// each version's last requests, an error rate or a latency p95 above its threshold fires an alarm once
// (an 'alarm' event, an entry in the registry's audit log) until the window is back under both; with
// autoRollback (off by default) an alarm on the version a channel serves rolls that channel back.
import { EventEmitter } from 'node:events';
import { z } from 'zod';
import type { HistoryEntry, Registry } from './registry.js';
import { quantile } from './router-stats.js';

/** Upper bounds of the latency buckets, in seconds (Prometheus' default buckets, extended to 30 s). */
export const LATENCY_BUCKETS_S = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30] as const;

export const DriftConfig = z.strictObject({
  /** the window: each version's last N requests */
  windowRequests: z.number().int().min(1).default(50),
  /** and only those of the last S seconds (default: no age limit) */
  windowSeconds: z.number().positive().optional(),
  /** no alarm before the window holds this many requests */
  minRequests: z.number().int().min(1).default(10),
  /** alarm when errors / requests in the window exceed this */
  maxErrorRate: z.number().min(0).max(1).optional(),
  /** alarm when the window's p95 latency (successful requests) exceeds this */
  maxLatencyP95Ms: z.number().positive().optional(),
  /** roll the channel back when the alarmed version is the one it serves (needs registry and channel) */
  autoRollback: z.boolean().default(false),
});
export type DriftConfig = z.input<typeof DriftConfig>;

export interface Observation {
  version: string;
  ok: boolean;
  latencyMs: number;
  completionTokens?: number;
  error?: string;
}

export interface DriftAlarm {
  at: string;
  version: string;
  channel: string | null;
  reasons: { metric: 'error_rate' | 'latency_p95_ms'; value: number; threshold: number }[];
  window: { requests: number; errors: number; errorRate: number; latencyP95Ms: number | null };
  /** the version was the one the channel served when the alarm fired */
  served: boolean;
  /** the rollback made (autoRollback), or why none was */
  rollback: HistoryEntry | { error: string } | null;
}

interface VersionStats {
  requests: number;
  errors: number;
  completionTokens: number;
  /** per bucket (not cumulative), the last one is +Inf */
  buckets: number[];
  latencySumMs: number;
  window: { at: number; ok: boolean; latencyMs: number }[];
  alarmed: boolean;
  lastError: string | null;
}

export interface VersionSnapshot {
  requests: number;
  errors: number;
  errorRate: number | null;
  completionTokens: number;
  latency: { buckets: { le: number | '+Inf'; count: number }[]; sumMs: number; count: number; p50Ms: number | null; p95Ms: number | null };
  window: { requests: number; errors: number; errorRate: number | null; latencyP95Ms: number | null };
  alarmActive: boolean;
  lastError: string | null;
}

export interface MonitorSnapshot {
  at: string;
  channel: string | null;
  served: string | null;
  versions: Record<string, VersionSnapshot>;
  alarms: DriftAlarm[];
}

export interface MonitorOptions {
  /** the channel whose served version the alarm watches (and rolls back) */
  channel?: string;
  registry?: Registry;
  drift?: DriftConfig;
}

/** Latency p50/p95 estimated from cumulative buckets (linear inside a bucket, as Prometheus' histogram_quantile). */
function histogramQuantile(buckets: number[], q: number): number | null {
  const total = buckets.reduce((a, b) => a + b, 0);
  if (!total) return null;
  const rank = q * total;
  let cum = 0;
  for (let i = 0; i < buckets.length; i++) {
    if (cum + buckets[i] >= rank && buckets[i] > 0) {
      if (i === LATENCY_BUCKETS_S.length) return LATENCY_BUCKETS_S[i - 1] * 1000;
      const lo = i === 0 ? 0 : LATENCY_BUCKETS_S[i - 1];
      return (lo + (LATENCY_BUCKETS_S[i] - lo) * ((rank - cum) / buckets[i])) * 1000;
    }
    cum += buckets[i];
  }
  return LATENCY_BUCKETS_S[LATENCY_BUCKETS_S.length - 1] * 1000;
}

const label = (v: string) => v.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');

export class Monitor extends EventEmitter {
  drift: z.output<typeof DriftConfig>;
  readonly channel: string | null;
  private readonly registry: Registry | null;
  private readonly stats = new Map<string, VersionStats>();
  private readonly alarmLog: DriftAlarm[] = [];
  private pending: Promise<unknown> = Promise.resolve();

  constructor(opts: MonitorOptions = {}) {
    super();
    this.drift = DriftConfig.parse(opts.drift ?? {});
    this.channel = opts.channel ?? null;
    this.registry = opts.registry ?? null;
    if (this.drift.autoRollback && (!this.registry || !this.channel)) throw new Error('monitor: drift.autoRollback needs registry and channel');
  }

  /** Changes the drift thresholds and window (the counts are kept; an active alarm stays until the window is back under). */
  configure(drift: DriftConfig): void {
    const d = DriftConfig.parse(drift);
    if (d.autoRollback && (!this.registry || !this.channel)) throw new Error('monitor: drift.autoRollback needs registry and channel');
    this.drift = d;
    for (const s of this.stats.values()) while (s.window.length > d.windowRequests) s.window.shift();
  }

  /** Counts one served request and checks the version's window against the drift thresholds. */
  record(o: Observation): void {
    let s = this.stats.get(o.version);
    if (!s) {
      s = { requests: 0, errors: 0, completionTokens: 0, buckets: new Array<number>(LATENCY_BUCKETS_S.length + 1).fill(0), latencySumMs: 0, window: [], alarmed: false, lastError: null };
      this.stats.set(o.version, s);
    }
    s.requests++;
    if (!o.ok) {
      s.errors++;
      s.lastError = o.error ?? 'error';
    }
    s.completionTokens += o.completionTokens ?? 0;
    const sec = o.latencyMs / 1000;
    let b = LATENCY_BUCKETS_S.findIndex((le) => sec <= le);
    if (b < 0) b = LATENCY_BUCKETS_S.length;
    s.buckets[b]++;
    s.latencySumMs += o.latencyMs;
    s.window.push({ at: Date.now(), ok: o.ok, latencyMs: o.latencyMs });
    if (s.window.length > this.drift.windowRequests) s.window.shift();
    this.check(o.version, s);
  }

  private windowOf(s: VersionStats): { requests: number; errors: number; errorRate: number | null; latencyP95Ms: number | null } {
    const since = this.drift.windowSeconds === undefined ? -Infinity : Date.now() - this.drift.windowSeconds * 1000;
    const w = s.window.filter((x) => x.at >= since);
    const errors = w.filter((x) => !x.ok).length;
    return { requests: w.length, errors, errorRate: w.length ? errors / w.length : null, latencyP95Ms: quantile(w.filter((x) => x.ok).map((x) => x.latencyMs), 0.95) };
  }

  private check(version: string, s: VersionStats): void {
    const d = this.drift;
    if (d.maxErrorRate === undefined && d.maxLatencyP95Ms === undefined) return;
    const w = this.windowOf(s);
    if (w.requests < d.minRequests) return;
    const reasons: DriftAlarm['reasons'] = [];
    if (d.maxErrorRate !== undefined && w.errorRate! > d.maxErrorRate) reasons.push({ metric: 'error_rate', value: w.errorRate!, threshold: d.maxErrorRate });
    if (d.maxLatencyP95Ms !== undefined && w.latencyP95Ms !== null && w.latencyP95Ms > d.maxLatencyP95Ms) reasons.push({ metric: 'latency_p95_ms', value: w.latencyP95Ms, threshold: d.maxLatencyP95Ms });
    if (!reasons.length) {
      if (s.alarmed) {
        s.alarmed = false;
        // through the same queue as alarms, so listeners see them in order
        this.pending = this.pending.then(() => this.emit('recovered', { version, window: w }));
      }
      return;
    }
    if (s.alarmed) return;
    s.alarmed = true;
    const served = this.registry && this.channel ? this.registry.current(this.channel) === version : false;
    const alarm: DriftAlarm = { at: new Date().toISOString(), version, channel: this.channel, reasons, window: { ...w, errorRate: w.errorRate! }, served, rollback: null };
    this.alarmLog.push(alarm);
    this.pending = this.pending.then(() => this.handle(alarm)).catch(() => undefined);
  }

  private async handle(alarm: DriftAlarm): Promise<void> {
    const why = alarm.reasons.map((r) => `${r.metric} ${r.value.toFixed(3)} > ${r.threshold}`).join(', ');
    if (this.drift.autoRollback && alarm.served) {
      try {
        alarm.rollback = await this.registry!.rollback(this.channel!, `drift alarm on ${alarm.version}: ${why}`);
      } catch (e) {
        alarm.rollback = { error: e instanceof Error ? e.message : String(e) };
      }
    }
    if (this.registry) await this.registry.recordEvent('drift_alarm', { version: alarm.version, channel: alarm.channel, reasons: alarm.reasons, window: alarm.window, served: alarm.served, rollback: alarm.rollback });
    this.emit('alarm', alarm);
  }

  /** Resolves once the alarms fired so far are handled (recorded, rolled back). */
  async idle(): Promise<void> {
    await this.pending;
  }

  alarms(): DriftAlarm[] {
    return [...this.alarmLog];
  }

  /** Everything the monitor holds, as plain JSON. */
  snapshot(): MonitorSnapshot {
    const versions: Record<string, VersionSnapshot> = {};
    for (const [v, s] of this.stats) {
      const count = s.buckets.reduce((a, b) => a + b, 0);
      let cum = 0;
      versions[v] = {
        requests: s.requests,
        errors: s.errors,
        errorRate: s.requests ? s.errors / s.requests : null,
        completionTokens: s.completionTokens,
        latency: {
          buckets: s.buckets.map((n, i) => ({ le: i < LATENCY_BUCKETS_S.length ? LATENCY_BUCKETS_S[i] : ('+Inf' as const), count: (cum += n) })),
          sumMs: s.latencySumMs,
          count,
          p50Ms: histogramQuantile(s.buckets, 0.5),
          p95Ms: histogramQuantile(s.buckets, 0.95),
        },
        window: this.windowOf(s),
        alarmActive: s.alarmed,
        lastError: s.lastError,
      };
    }
    let served: string | null = null;
    if (this.registry && this.channel) {
      try {
        served = this.registry.current(this.channel);
      } catch {
        served = null;
      }
    }
    return { at: new Date().toISOString(), channel: this.channel, served, versions, alarms: this.alarms() };
  }

  /** The Prometheus text exposition format (version 0.0.4) of the counters and histograms. */
  exposition(prefix = 'starweave'): string {
    const ch = this.channel === null ? '' : `channel="${label(this.channel)}",`;
    const lines: string[] = [];
    const family = (name: string, type: string, help: string, rows: string[]) => lines.push(`# HELP ${prefix}_${name} ${help}`, `# TYPE ${prefix}_${name} ${type}`, ...rows);
    const each = (f: (v: string, s: VersionStats, l: string) => string | string[]) => [...this.stats].flatMap(([v, s]) => f(v, s, `${ch}version="${label(v)}"`));
    family('requests_total', 'counter', 'Generate requests served, by version.', each((_, s, l) => `${prefix}_requests_total{${l}} ${s.requests}`));
    family('request_errors_total', 'counter', 'Generate requests that failed, by version.', each((_, s, l) => `${prefix}_request_errors_total{${l}} ${s.errors}`));
    family('completion_tokens_total', 'counter', 'New tokens generated, by version.', each((_, s, l) => `${prefix}_completion_tokens_total{${l}} ${s.completionTokens}`));
    family(
      'request_duration_seconds',
      'histogram',
      'Generate request latency in seconds, by version.',
      each((_, s, l) => {
        let cum = 0;
        const rows = s.buckets.map((n, i) => `${prefix}_request_duration_seconds_bucket{${l},le="${i < LATENCY_BUCKETS_S.length ? LATENCY_BUCKETS_S[i] : '+Inf'}"} ${(cum += n)}`);
        rows.push(`${prefix}_request_duration_seconds_sum{${l}} ${s.latencySumMs / 1000}`, `${prefix}_request_duration_seconds_count{${l}} ${cum}`);
        return rows;
      }),
    );
    family('drift_alarm_active', 'gauge', '1 while the version is over a drift threshold.', each((_, s, l) => `${prefix}_drift_alarm_active{${l}} ${s.alarmed ? 1 : 0}`));
    return lines.join('\n') + '\n';
  }
}
