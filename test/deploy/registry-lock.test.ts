// The registry's writer lock across real processes: two node processes increment a counter file with a
// read, a pause and a write inside the lock (without it they lose updates); a lock left by a dead
// process is broken; a live holder makes a waiter time out with its pid named.
import { spawn, spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import ts from 'typescript';
import { acquireLock, readLockOwner } from '../../src/deploy/registry-lock.js';
import { tmp } from './fixtures.js';

function compileLock(dir: string): string {
  const src = readFileSync(join(process.cwd(), 'src/deploy/registry-lock.ts'), 'utf8');
  const out = ts.transpileModule(src, { compilerOptions: { module: ts.ModuleKind.ES2022, target: ts.ScriptTarget.ES2022 } });
  const file = join(dir, 'registry-lock.mjs');
  writeFileSync(file, out.outputText);
  return file;
}

const CHILD = (lockModule: string) => `
import { withLock } from ${JSON.stringify(lockModule)};
import { readFileSync, writeFileSync } from 'node:fs';
const [lock, counter, n] = process.argv.slice(2);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
for (let i = 0; i < Number(n); i++) {
  await withLock(lock, async () => {
    const v = Number(readFileSync(counter, 'utf8'));
    await sleep(1);
    writeFileSync(counter, String(v + 1));
  });
}
`;

function runChild(script: string, args: string[]): Promise<number> {
  return new Promise((res, rej) => {
    const c = spawn(process.execPath, [script, ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    c.stderr.on('data', (d: Buffer) => (err += d.toString()));
    c.on('error', rej);
    c.on('close', (code) => (code === 0 ? res(code) : rej(new Error(`child exited ${code}: ${err}`))));
  });
}

describe('registry lock', () => {
  test('two processes serialise their read-modify-writes', async () => {
    const d = tmp('sw-lock-');
    const lockModule = compileLock(d);
    const script = join(d, 'child.mjs');
    writeFileSync(script, CHILD(lockModule));
    const counter = join(d, 'counter');
    writeFileSync(counter, '0');
    const n = 40;
    await Promise.all([runChild(script, [join(d, 'x.lock'), counter, String(n)]), runChild(script, [join(d, 'x.lock'), counter, String(n)])]);
    expect(Number(readFileSync(counter, 'utf8'))).toBe(2 * n);
  });

  test('a lock left by a dead process is broken; a live holder is waited for, then named', async () => {
    const d = tmp('sw-lock-');
    const file = join(d, 'registry.lock');
    const dead = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], { encoding: 'utf8' });
    const deadPid = Number(dead.stdout);
    writeFileSync(file, JSON.stringify({ pid: deadPid, host: hostname(), nonce: 'old', at: Date.now() }));
    const l = await acquireLock(file);
    expect(l.brokeStale).toMatch(new RegExp(`its process ${deadPid} is gone`));
    expect(readLockOwner(file)?.pid).toBe(process.pid);
    // held by us (alive): a second taker waits, then fails naming the holder
    await expect(acquireLock(file, { timeoutMs: 150 })).rejects.toThrow(new RegExp(`still held after 150 ms by pid ${process.pid}`));
    l.release();
    expect(readLockOwner(file)).toBeUndefined();
    // another host's lock: stale only when old
    writeFileSync(file, JSON.stringify({ pid: 1, host: 'elsewhere', nonce: 'x', at: Date.now() - 60_000 }));
    await expect(acquireLock(file, { timeoutMs: 100, staleMs: 120_000 })).rejects.toThrow(/still held/);
    const l2 = await acquireLock(file, { staleMs: 30_000 });
    expect(l2.brokeStale).toMatch(/60 s old \(host elsewhere\)/);
    l2.release();
  });
});
