// `starweave-ft registry`: the commands in process (JSON output, exit codes, a promotion refused by a
// failing suite), and the real binary in two concurrent processes writing one store (no lost update).
import { execFile, spawnSync } from 'node:child_process';
import { existsSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { jest } from '@jest/globals';
import { runRegistryCommand } from '../../src/cli/registry.js';
import { Registry } from '../../src/deploy/registry.js';
import { tinyBase, tmp, writeAdapter } from './fixtures.js';

async function cli(args: string[]): Promise<{ code: number; out: string; err: string }> {
  const out: string[] = [];
  const err: string[] = [];
  const log = jest.spyOn(console, 'log').mockImplementation((...a: unknown[]) => void out.push(a.join(' ')));
  const error = jest.spyOn(console, 'error').mockImplementation((...a: unknown[]) => void err.push(a.join(' ')));
  try {
    const code = await runRegistryCommand(args);
    return { code, out: out.join('\n'), err: err.join('\n') };
  } finally {
    log.mockRestore();
    error.mockRestore();
  }
}

describe('registry CLI', () => {
  test('register, list, promote with a suite (refused, then passed), rollback, history, test, verify', async () => {
    const base = await tinyBase();
    const store = join(tmp(), 'reg');
    const s = ['--store', store];
    const a1 = await writeAdapter(join(tmp(), 'a1'), base, 51);
    const a2 = await writeAdapter(join(tmp(), 'a2'), base, 52);
    let r = await cli(['register', a1, '--base', base, '--tag', 'first', '--notes', 'hello', '--json', ...s]);
    expect(r.code).toBe(0);
    expect(JSON.parse(r.out)).toMatchObject({ existing: false, version: { id: 'v1', kind: 'peft-adapter', notes: 'hello' } });
    r = await cli(['register', a2, '--base', base, ...s]);
    expect(r.out).toMatch(/^registered v2\s+peft-adapter/);
    r = await cli(['list', '--json', ...s]);
    expect(JSON.parse(r.out).versions.map((v: { id: string; tags: string[] }) => [v.id, v.tags])).toEqual([['v1', ['first']], ['v2', []]]);

    const suite = join(tmp(), 'suite.yaml');
    writeFileSync(suite, `name: cli\ncases:\n  - name: short\n    messages: [{ role: user, content: "Ping?" }]\n    max_new_tokens: 4\n    expect:\n      max_tokens: 4\n  - name: impossible\n    messages: [{ role: user, content: "Ping?" }]\n    max_new_tokens: 4\n    expect:\n      contains: "this exact sentence will not be generated"\n`);
    r = await cli(['promote', 'v1', 'production', '--suite', suite, ...s]);
    expect(r.code).toBe(1);
    expect(r.out).toContain('suite cli on v1: 1/2 passed');
    expect(r.out).toContain('impossible: contains: the answer does not contain "this exact sentence will not be generated"');
    expect(r.out).toContain('refused: v1 failed 1 of 2 cases of suite cli; not promoted to production:');
    // the passing case alone
    writeFileSync(suite, `name: cli\ncases:\n  - name: short\n    messages: [{ role: user, content: "Ping?" }]\n    max_new_tokens: 4\n    expect:\n      max_tokens: 4\n`);
    r = await cli(['promote', 'v1', 'production', '--suite', suite, '--json', ...s]);
    expect(r.code).toBe(0);
    expect(JSON.parse(r.out)).toMatchObject({ promoted: true, entry: { version: 'v1', previous: null } });
    r = await cli(['promote', 'first', 'canary', ...s]);
    expect(r.out).toBe('v1 promoted to canary (was empty)');
    r = await cli(['promote', 'v2', 'production', '--reason', 'try v2', ...s]);
    expect(r.code).toBe(0);
    r = await cli(['rollback', 'production', ...s]);
    expect(r.out).toBe('production rolled back to v1 (from v2)');
    r = await cli(['history', 'production', '--json', ...s]);
    expect(JSON.parse(r.out).map((e: { action: string; version: string }) => `${e.action}:${e.version}`)).toEqual(['promote:v1', 'promote:v2', 'rollback:v1']);
    r = await cli(['test', '@production', '--suite', suite, ...s]);
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/suite cli on v1: 1\/1 passed/);
    r = await cli(['show', 'v1', '--json', ...s]);
    expect(JSON.parse(r.out).tests.map((t: { passed: boolean }) => t.passed)).toEqual([false, true, true]);
    r = await cli(['untag', 'first', ...s]);
    expect(r.out).toBe('#first removed');
    expect((await cli(['untag', 'first', ...s])).err).toMatch(/no tag 'first'/);
    r = await cli(['events', ...s]);
    expect(r.out.split('\n').map((l) => l.split(/\s+/)[1])).toEqual(['register', 'tag', 'register', 'test', 'test', 'promote', 'promote', 'promote', 'rollback', 'test', 'untag']);
    expect(r.out).toContain('rollback    channel=production version=v1 previous=v2');
    r = await cli(['verify', 'v2', ...s]);
    expect(r.out).toBe('v2: every file matches its hash');

    // errors: exit 1 with the reason; usage: exit 2
    r = await cli(['rollback', 'staging', ...s]);
    expect(r).toMatchObject({ code: 1, err: "starweave-ft registry rollback: channel 'staging' does not exist" });
    r = await cli(['show', 'v9', '--json', ...s]);
    expect(JSON.parse(r.out)).toMatchObject({ code: 'not_found' });
    expect((await cli(['promote', 'v1', ...s])).code).toBe(2);
    expect((await cli(['frob', ...s])).err).toMatch(/unknown command 'frob'/);
    expect((await cli(['list', '--bogus', ...s])).err).toMatch(/unknown option --bogus/);
    expect((await cli(['--help'])).out).toContain('usage: starweave-ft registry');
  });

  test('two processes of the real binary write one store concurrently without losing an update', async () => {
    const main = join(process.cwd(), 'dist/src/cli/main.js');
    const built = join(process.cwd(), 'dist/src/cli/registry.js');
    const sources = ['src/cli/registry.ts', 'src/deploy/registry.ts', 'src/deploy/registry-lock.ts'].map((f) => join(process.cwd(), f));
    if (!existsSync(built) || sources.some((f) => statSync(f).mtimeMs > statSync(built).mtimeMs)) {
      spawnSync('npm', ['run', 'build:ts', '--silent'], { stdio: 'inherit' });
      if (!existsSync(built)) throw new Error('npm run build:ts did not produce dist/src/cli/registry.js');
    }
    const base = await tinyBase();
    const store = join(tmp(), 'reg');
    const run = promisify(execFile);
    const chain = async (tag: string, seeds: number[]) => {
      for (const seed of seeds) {
        const dir = await writeAdapter(join(tmp(), `${tag}${seed}`), base, seed);
        const r = await run(process.execPath, [main, 'registry', 'register', dir, '--base', base, '--tag', `${tag}${seed}`, '--json', '--store', store]);
        const id = JSON.parse(r.stdout).version.id as string;
        await run(process.execPath, [main, 'registry', 'promote', id, `ch-${tag}`, '--store', store]);
      }
    };
    await Promise.all([chain('a', [61, 62, 63]), chain('b', [71, 72, 73])]);
    const reg = new Registry(store);
    const versions = reg.list();
    expect(versions.map((v) => v.seq)).toEqual([1, 2, 3, 4, 5, 6]);
    expect(new Set(versions.map((v) => v.contentHash)).size).toBe(6);
    expect(Object.keys(reg.read().tags).sort()).toEqual(['a61', 'a62', 'a63', 'b71', 'b72', 'b73']);
    expect(reg.history('ch-a')).toHaveLength(3);
    expect(reg.history('ch-b')).toHaveLength(3);
    expect(reg.current('ch-a')).toBe(reg.resolve('a63'));
    const types = reg.events().map((e) => e.type);
    expect(types.filter((t) => t === 'register')).toHaveLength(6);
    expect(types.filter((t) => t === 'promote')).toHaveLength(6);
    expect(existsSync(reg.lockFile)).toBe(false);
  });
});
