// A/B routing with real generation: keys stick to their version, the split follows the key hash,
// raising the share only moves keys to the candidate, the two versions answer differently, ratings and
// latencies are compared, a rollback of the channel changes the control on the next request.
import { join } from 'node:path';
import { Registry } from '../../src/deploy/registry.js';
import { ServingEngine } from '../../src/deploy/serving.js';
import { keyBucket, RouteError, Router } from '../../src/deploy/router.js';
import { tinyBase, tmp, writeAdapter } from './fixtures.js';

const msg = [{ role: 'user' as const, content: 'Which supervisor strategy restarts only the failed child?' }];

describe('A/B router', () => {
  test('sticky split, real answers per version, ratings compared, rollback followed', async () => {
    const base = await tinyBase();
    const reg = new Registry(join(tmp(), 'store'));
    await reg.register({ source: await writeAdapter(join(tmp(), 'a1'), base, 21), base });
    await reg.register({ source: await writeAdapter(join(tmp(), 'a2'), base, 22), base });
    await reg.register({ source: await writeAdapter(join(tmp(), 'a3'), base, 23), base });
    await reg.promote({ version: 'v1', channel: 'production' });
    await reg.promote({ version: 'v2', channel: 'production' });
    await reg.promote({ version: 'v3', channel: 'canary' });
    const engine = new ServingEngine(reg);
    const router = new Router(engine, { channel: 'production', candidate: '@canary', candidateShare: 0.5, salt: 'exp-1' });
    try {
      const keys = Array.from({ length: 24 }, (_, i) => `user-${i}`);
      const first = await Promise.all(keys.map((key) => router.generate({ key, messages: msg, maxNewTokens: 6 })));
      for (const r of first) {
        const expectCandidate = keyBucket(r.key, 'exp-1') < 0.5;
        expect(r.arm).toBe(expectCandidate ? 'candidate' : 'control');
        expect(r.version).toBe(expectCandidate ? 'v3' : 'v2');
      }
      const nCand = first.filter((r) => r.arm === 'candidate').length;
      expect(nCand).toBeGreaterThan(0);
      expect(nCand).toBeLessThan(keys.length);
      // the two versions answer the same prompt differently; one version always answers the same (greedy)
      const byVersion = new Map(first.map((r) => [r.version, r.text]));
      expect(byVersion.get('v2')).not.toBe(byVersion.get('v3'));
      for (const r of first) expect(r.text).toBe(byVersion.get(r.version));
      // sticky: the same keys again go to the same versions
      const again = await Promise.all(keys.map((key) => router.generate({ key, messages: msg, maxNewTokens: 6 })));
      expect(again.map((r) => r.version)).toEqual(first.map((r) => r.version));
      // raising the share moves keys to the candidate only
      router.configure({ candidateShare: 0.9 });
      for (const key of keys) {
        const before = first.find((r) => r.key === key)!.arm;
        if (before === 'candidate') expect(router.assign(key).arm).toBe('candidate');
      }
      router.configure({ candidateShare: 0.5 });

      // ratings: the candidate's answers rated higher
      for (const r of [...first, ...again]) router.rate(r.requestId, r.arm === 'candidate' ? 4 + (r.key.length % 2) : 2 + (r.key.length % 2) + (Number(r.key.slice(5)) % 2));
      expect(() => router.rate('nope', 3)).toThrow(/no served request 'nope'/);
      const rep = router.report();
      expect(rep).toMatchObject({ channel: 'production', control: 'v2', candidate: 'v3', candidateShare: 0.5 });
      const v2 = rep.versions.find((v) => v.version === 'v2')!;
      const v3 = rep.versions.find((v) => v.version === 'v3')!;
      expect(v2.requests + v3.requests).toBe(48);
      expect(v3.requests).toBe(2 * nCand);
      expect(v2.errors + v3.errors).toBe(0);
      expect(v2.errorRateCi95![0]).toBeCloseTo(0, 12);
      expect(v2.errorRateCi95![1]).toBeGreaterThan(0.05);
      for (const v of [v2, v3]) {
        expect(v.latencyMs.p50!).toBeGreaterThan(0);
        expect(v.latencyMs.p95!).toBeGreaterThanOrEqual(v.latencyMs.p50!);
        expect(v.decodeTokensPerSec.mean!).toBeGreaterThan(0);
        expect(v.rating.n).toBe(v.requests);
        expect(v.rating.ci95![0]).toBeLessThan(v.rating.mean!);
      }
      expect(v3.rating.mean).toBeGreaterThan(v2.rating.mean!);
      expect(rep.comparison!.rating!.difference).toBeCloseTo(v3.rating.mean! - v2.rating.mean!, 12);
      expect(rep.comparison!.rating!.p).toBeLessThan(0.001);
      expect(rep.comparison!.errorRate).toBeNull(); // no errors on either side: nothing to test
      expect(rep.comparison!.latencyMs).not.toBeNull();

      // a rollback of the channel: control is v1 from the next request
      await reg.rollback('production');
      const control = first.find((r) => r.arm === 'control')!;
      const after = await router.generate({ key: control.key, messages: msg, maxNewTokens: 6 });
      expect(after.version).toBe('v1');
      expect(router.report().control).toBe('v1');
    } finally {
      await engine.close();
    }
  });

  test('no candidate: all traffic to the channel; a failing request is a RouteError and counted', async () => {
    const base = await tinyBase();
    const reg = new Registry(join(tmp(), 'store'));
    await reg.register({ source: await writeAdapter(join(tmp(), 'a1'), base, 31), base });
    await reg.promote({ version: 'v1', channel: 'production' });
    const engine = new ServingEngine(reg);
    const router = new Router(engine, { channel: 'production' });
    try {
      const r = await router.generate({ messages: msg, maxNewTokens: 3 });
      expect(r).toMatchObject({ version: 'v1', arm: 'control' });
      const err = await router.generate({ messages: [{ role: 'user', content: 'x '.repeat(600) }], maxNewTokens: 8 }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(RouteError);
      expect((err as RouteError).message).toMatch(/on v1 \(control\) failed: .*512/);
      const rep = router.report();
      expect(rep.versions[0]).toMatchObject({ version: 'v1', requests: 2, errors: 1, errorRate: 0.5 });
      expect(rep.comparison).toBeNull();
      await expect(new Router(engine, { channel: 'staging' }).generate({ messages: msg })).rejects.toThrow(/channel 'staging' does not exist/);
      expect(() => new Router(engine, { channel: 'production', candidateShare: 2 })).toThrow();
    } finally {
      await engine.close();
    }
  });
});
