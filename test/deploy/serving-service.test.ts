// The deployment service's method table (what the port exposes): params validated with field paths,
// paths through resolvePath, the whole flow by method calls with JSON-serialisable results: register,
// promote with a suite, serve through a channel with an A/B split, rate, report, monitor snapshot and
// exposition, a drift alarm re-emitted by the service with auto-rollback, history and events.
import { cpSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { DEPLOY_METHODS, DeploymentService } from '../../src/deploy/serving-service.js';
import type { DriftAlarm } from '../../src/deploy/monitor.js';
import { tinyBase, tmp, writeAdapter } from './fixtures.js';

const json = <T>(v: T): T => JSON.parse(JSON.stringify(v)) as T;

describe('deployment service', () => {
  test('the flow by method calls', async () => {
    const base = await tinyBase();
    const ws = tmp('sw-ws-');
    cpSync(base, join(ws, 'base'), { recursive: true });
    cpSync(base, join(ws, 'base-bad'), { recursive: true });
    await writeAdapter(join(ws, 'a1'), join(ws, 'base'), 81);
    await writeAdapter(join(ws, 'a2'), join(ws, 'base'), 82);
    await writeAdapter(join(ws, 'bad'), join(ws, 'base-bad'), 83);
    writeFileSync(join(ws, 'suite.json'), JSON.stringify({ name: 'smoke', cases: [{ name: 'short', messages: [{ role: 'user', content: 'Ping?' }], max_new_tokens: 4, expect: { max_tokens: 4 } }] }));
    const fields: string[] = [];
    const svc = new DeploymentService({
      store: join(ws, 'registry'),
      drift: { windowRequests: 10, minRequests: 3, maxErrorRate: 0.5, autoRollback: true },
      resolvePath: (p, field) => {
        fields.push(field);
        if (p.startsWith('/')) throw new Error(`${field}: absolute paths are refused`);
        return resolve(ws, p);
      },
    });
    const alarms: DriftAlarm[] = [];
    svc.on('alarm', (a: DriftAlarm) => alarms.push(a));
    try {
      await expect(svc.call('registry.register', { source: 'a1', base: 'base', tags: ['x y'] })).rejects.toThrow(/registry.register: invalid params: tags\[0\]: a tag must be/);
      await expect(svc.call('registry.register', { source: '/etc' })).rejects.toThrow(/source: absolute paths are refused/);
      await expect(svc.call('serve.generate', { messages: [{ role: 'user', content: 'x' }] })).rejects.toThrow(/channel: give channel or version/);
      await expect(svc.call('nope', {})).rejects.toThrow(/unknown method; methods: registry.list/);

      for (const src of ['a1', 'a2']) await svc.call('registry.register', { source: src, base: 'base' });
      await svc.call('registry.register', { source: 'bad', base: 'base-bad' });
      expect(fields).toEqual(expect.arrayContaining(['source', 'base']));
      const p1 = (await svc.call('registry.promote', { version: 'v1', channel: 'production', suite: 'suite.json' })) as { promoted: boolean };
      expect(p1.promoted).toBe(true);
      expect(await svc.call('registry.promote', { version: 'v2', channel: 'canary' })).toMatchObject({ promoted: true, entry: { version: 'v2' } });
      expect(await svc.call('ab.configure', { channel: 'production', candidate: '@canary', candidateShare: 0.5, salt: 's' })).toEqual({ channel: 'production', candidate: '@canary', candidateShare: 0.5, salt: 's' });

      const served: { requestId: string; version: string; arm: string; text: string }[] = [];
      for (let i = 0; i < 10; i++) served.push((await svc.call('serve.generate', { channel: 'production', key: `u${i}`, messages: [{ role: 'user', content: 'Hello?' }], maxNewTokens: 3 })) as (typeof served)[number]);
      expect(new Set(served.map((r) => r.version))).toEqual(new Set(['v1', 'v2']));
      for (const r of served) await svc.call('ab.rate', { channel: 'production', requestId: r.requestId, score: r.version === 'v2' ? 5 : 3 });
      const rep = json(await svc.call('ab.report', { channel: 'production' })) as { versions: { version: string; rating: { mean: number } }[]; comparison: unknown };
      expect(rep.versions.find((v) => v.version === 'v2')!.rating.mean).toBe(5);
      expect(rep.comparison).not.toBeNull();
      const direct = (await svc.call('serve.generate', { version: 'v1', messages: [{ role: 'user', content: 'Hello?' }], maxNewTokens: 3 })) as { text: string };
      expect(direct.text).toBe(served.find((r) => r.version === 'v1')!.text);

      // a bad version promoted: the channel's monitor fires, the service re-emits, auto-rollback
      expect(await svc.call('ab.configure', { channel: 'production', candidate: null })).toEqual({ channel: 'production', candidateShare: 0.5, salt: 's' });
      rmSync(join(ws, 'base-bad', 'model.safetensors'));
      await svc.call('registry.promote', { version: 'v3', channel: 'production' });
      for (let i = 0; i < 3; i++) await expect(svc.call('serve.generate', { channel: 'production', messages: [{ role: 'user', content: 'Hi' }], maxNewTokens: 2 })).rejects.toThrow(/on v3 \(control\) failed/);
      await svc.monitor('production').idle();
      expect(alarms.map((a) => [a.version, a.served, (a.rollback as { version?: string }).version])).toEqual([['v3', true, 'v1']]);
      const snap = json(await svc.call('monitor.snapshot', { channel: 'production' })) as { served: string; versions: Record<string, { errors: number }> };
      expect(snap.served).toBe('v1');
      expect(snap.versions.v3.errors).toBe(3);
      const { text } = (await svc.call('monitor.exposition', {})) as { text: string };
      expect(text).toContain('starweave_request_errors_total{channel="production",version="v3"} 3');
      expect(await svc.call('monitor.configure', { channel: 'production', maxErrorRate: 0.9 })).toMatchObject({ maxErrorRate: 0.9, windowRequests: 50, autoRollback: false });
      const hist = (await svc.call('registry.history', { channel: 'production' })) as { action: string; version: string }[];
      expect(hist.map((h) => `${h.action}:${h.version}`)).toEqual(['promote:v1', 'promote:v3', 'rollback:v1']);
      const ev = (await svc.call('registry.events', { since: 0, limit: 100 })) as { events: { type: string }[]; next: number };
      expect(ev.events.map((e) => e.type)).toContain('drift_alarm');
      const list = json(await svc.call('registry.list', {})) as { versions: { id: string; channels: string[] }[] };
      expect(list.versions.map((v) => [v.id, v.channels])).toEqual([['v1', ['production']], ['v2', ['canary']], ['v3', []]]);
      expect(Object.keys(DEPLOY_METHODS)).toEqual(expect.arrayContaining(['registry.list', 'registry.promote', 'registry.rollback', 'serve.generate', 'ab.report', 'monitor.snapshot']));
    } finally {
      await svc.close();
    }
  });
});
