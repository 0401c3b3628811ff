// Monitoring: counters and fixed-bucket latency histograms (snapshot and Prometheus text), the drift
// alarm over a sliding window (fires once, recovers), and end to end: a version whose engine throws on
// every request (its base model's weights are gone) is promoted, the router serves it, the failures
// fire the alarm, the alarm is recorded in the audit log and auto-rollback returns the channel to the
// good version, which then serves.
import { cpSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { LATENCY_BUCKETS_S, Monitor } from '../../src/deploy/monitor.js';
import type { DriftAlarm } from '../../src/deploy/monitor.js';
import { Registry } from '../../src/deploy/registry.js';
import { RouteError, Router } from '../../src/deploy/router.js';
import { ServingEngine } from '../../src/deploy/serving.js';
import { tinyBase, tmp, writeAdapter } from './fixtures.js';

describe('monitor', () => {
  test('counters, histogram buckets, snapshot and the Prometheus exposition', () => {
    const m = new Monitor({ channel: 'production' });
    for (const ms of [3, 7, 7, 40, 300, 45_000]) m.record({ version: 'v1', ok: true, latencyMs: ms, completionTokens: 2 });
    m.record({ version: 'v2', ok: false, latencyMs: 1, error: 'boom' });
    const s = m.snapshot();
    const v1 = s.versions.v1;
    expect(v1).toMatchObject({ requests: 6, errors: 0, errorRate: 0, completionTokens: 12, alarmActive: false });
    expect(v1.latency.count).toBe(6);
    expect(v1.latency.sumMs).toBe(3 + 7 + 7 + 40 + 300 + 45_000);
    // cumulative: <=5ms 1, <=10ms 3, <=50ms 4, <=500ms 5, +Inf 6
    const cum = Object.fromEntries(v1.latency.buckets.map((b) => [String(b.le), b.count]));
    expect(cum).toMatchObject({ '0.005': 1, '0.01': 3, '0.025': 3, '0.05': 4, '0.25': 4, '0.5': 5, '30': 5, '+Inf': 6 });
    expect(v1.latency.buckets).toHaveLength(LATENCY_BUCKETS_S.length + 1);
    // p50 inside the (5, 10] ms bucket: rank 3 of 6 -> 5 + 5 * (2/2) = 10 ms
    expect(v1.latency.p50Ms).toBeCloseTo(10, 9);
    expect(s.versions.v2).toMatchObject({ requests: 1, errors: 1, errorRate: 1, lastError: 'boom' });
    expect(JSON.parse(JSON.stringify(s))).toEqual(s);

    const text = m.exposition();
    expect(text).toContain('# TYPE starweave_requests_total counter\nstarweave_requests_total{channel="production",version="v1"} 6\nstarweave_requests_total{channel="production",version="v2"} 1\n');
    expect(text).toContain('starweave_request_errors_total{channel="production",version="v2"} 1\n');
    expect(text).toContain('# TYPE starweave_request_duration_seconds histogram\n');
    expect(text).toContain('starweave_request_duration_seconds_bucket{channel="production",version="v1",le="0.01"} 3\n');
    expect(text).toContain('starweave_request_duration_seconds_bucket{channel="production",version="v1",le="+Inf"} 6\n');
    expect(text).toContain(`starweave_request_duration_seconds_sum{channel="production",version="v1"} ${45357 / 1000}\n`);
    expect(text).toContain('starweave_request_duration_seconds_count{channel="production",version="v1"} 6\n');
    // every sample line is `name{labels} number`
    for (const l of text.split('\n').filter((x) => x && !x.startsWith('#'))) expect(l).toMatch(/^[a-z_]+\{[^}]*\} [0-9.e+-]+$/);
  });

  test('drift alarm: fires once over the window, recovers, fires again', () => {
    const m = new Monitor({ drift: { windowRequests: 10, minRequests: 5, maxErrorRate: 0.3, maxLatencyP95Ms: 200 } });
    const events: string[] = [];
    m.on('alarm', (a: DriftAlarm) => events.push(`alarm ${a.version} ${a.reasons.map((r) => r.metric).join('+')}`));
    m.on('recovered', (r: { version: string }) => events.push(`recovered ${r.version}`));
    for (let i = 0; i < 4; i++) m.record({ version: 'v1', ok: false, latencyMs: 5 });
    expect(m.alarms()).toHaveLength(0); // below minRequests
    m.record({ version: 'v1', ok: false, latencyMs: 5 });
    expect(m.alarms()).toHaveLength(1);
    expect(m.alarms()[0]).toMatchObject({ version: 'v1', served: false, rollback: null, reasons: [{ metric: 'error_rate', value: 1, threshold: 0.3 }], window: { requests: 5, errors: 5 } });
    for (let i = 0; i < 3; i++) m.record({ version: 'v1', ok: false, latencyMs: 5 });
    expect(m.alarms()).toHaveLength(1); // latched
    // successes slide the errors out of the 10-request window: 3/10 is not above 0.3
    for (let i = 0; i < 7; i++) m.record({ version: 'v1', ok: true, latencyMs: 5 });
    expect(m.snapshot().versions.v1.window).toMatchObject({ requests: 10, errors: 3 });
    expect(m.snapshot().versions.v1.alarmActive).toBe(false);
    // slow successes: the alarm fires on the first request that takes the window's p95 over 200 ms
    let firedAt = -1;
    for (let i = 0; i < 10; i++) {
      m.record({ version: 'v1', ok: true, latencyMs: 500 });
      if (firedAt < 0 && m.alarms().length === 2) firedAt = i;
    }
    expect(m.alarms()).toHaveLength(2);
    const r = m.alarms()[1].reasons;
    expect(r).toHaveLength(1);
    expect(r[0]).toMatchObject({ metric: 'latency_p95_ms', threshold: 200 });
    expect(r[0].value).toBeGreaterThan(200);
    // window before the first slow one: 7 fast successes (+3 errors); p95 of the successes crosses 200 ms at the first slow one
    expect(firedAt).toBe(0);
    return m.idle().then(() => expect(events).toEqual(['alarm v1 error_rate', 'recovered v1', 'alarm v1 latency_p95_ms']));
  });

  test('a time window: only the requests of the last windowSeconds count', async () => {
    const m = new Monitor({ drift: { windowRequests: 100, windowSeconds: 0.15, minRequests: 3, maxErrorRate: 0.5 } });
    for (let i = 0; i < 3; i++) m.record({ version: 'v1', ok: false, latencyMs: 1 });
    expect(m.alarms()).toHaveLength(1);
    await new Promise((r) => setTimeout(r, 250));
    // the errors have aged out: the window holds only what comes now
    expect(m.snapshot().versions.v1.window).toMatchObject({ requests: 0, errors: 0 });
    for (let i = 0; i < 3; i++) m.record({ version: 'v1', ok: true, latencyMs: 1 });
    expect(m.snapshot().versions.v1.window).toMatchObject({ requests: 3, errors: 0, errorRate: 0 });
    expect(m.snapshot().versions.v1.alarmActive).toBe(false);
    expect(m.snapshot().versions.v1).toMatchObject({ requests: 6, errors: 3 });
  });

  test('end to end: a version whose engine throws fires the alarm; auto-rollback restores the good version', async () => {
    const base = await tinyBase();
    const brokenBase = join(tmp(), 'base');
    cpSync(base, brokenBase, { recursive: true });
    const reg = new Registry(join(tmp(), 'store'));
    await reg.register({ source: await writeAdapter(join(tmp(), 'good'), base, 41), base });
    await reg.register({ source: await writeAdapter(join(tmp(), 'bad'), brokenBase, 42), base: brokenBase });
    rmSync(join(brokenBase, 'model.safetensors'));
    await reg.promote({ version: 'v1', channel: 'production' });
    await reg.promote({ version: 'v2', channel: 'production', reason: 'new adapter' });

    expect(() => new Monitor({ drift: { autoRollback: true } })).toThrow(/autoRollback needs registry and channel/);
    const monitor = new Monitor({ channel: 'production', registry: reg, drift: { windowRequests: 20, minRequests: 4, maxErrorRate: 0.5, autoRollback: true } });
    const engine = new ServingEngine(reg);
    const router = new Router(engine, { channel: 'production' }, { monitor });
    const alarms: DriftAlarm[] = [];
    monitor.on('alarm', (a: DriftAlarm) => alarms.push(a));
    try {
      const msg = [{ role: 'user' as const, content: 'Is the node healthy?' }];
      for (let i = 0; i < 4; i++) {
        const e = await router.generate({ key: `k${i}`, messages: msg, maxNewTokens: 4 }).catch((x: unknown) => x);
        expect(e).toBeInstanceOf(RouteError);
        expect((e as RouteError).message).toMatch(/on v2 \(control\) failed: v2: its base model .*\/model.safetensors is missing/);
      }
      await monitor.idle();
      expect(alarms).toHaveLength(1);
      expect(alarms[0]).toMatchObject({ version: 'v2', channel: 'production', served: true, reasons: [{ metric: 'error_rate', value: 1 }], rollback: { action: 'rollback', version: 'v1', previous: 'v2' } });
      expect(reg.current('production')).toBe('v1');
      const ev = reg.events().filter((e) => e.type === 'drift_alarm' || e.type === 'rollback');
      expect(ev.map((e) => e.type)).toEqual(['rollback', 'drift_alarm']);
      expect(String(ev[0].reason)).toMatch(/^drift alarm on v2: error_rate 1.000 > 0.5/);
      // the next request is served by v1
      const ok = await router.generate({ key: 'k0', messages: msg, maxNewTokens: 4 });
      expect(ok.version).toBe('v1');
      const snap = monitor.snapshot();
      expect(snap.served).toBe('v1');
      expect(snap.versions.v2).toMatchObject({ requests: 4, errors: 4, alarmActive: true });
      expect(snap.versions.v1).toMatchObject({ requests: 1, errors: 0 });
      expect(router.report().versions.find((v) => v.version === 'v2')).toMatchObject({ errors: 4, errorRate: 1 });
    } finally {
      await engine.close();
    }
  });
});
