// The registry's writer lock: a lock file created with O_EXCL holding its owner ({pid, host, nonce, at}).
// Writers in any process on the machine (or on a shared filesystem) take it around each read-modify-write
// of index.json; readers never need it (index.json is replaced atomically). A lock left by a dead
// process is stale: on the same host when its pid is gone, on another host when older than staleMs.
// Breaking a stale lock goes through a second short-lived guard file so that two waiters cannot both
// break it and then delete each other's fresh lock.
// No project imports: the two-process test runs this file alone in child processes.
import { readFileSync, statSync, unlinkSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';

export interface LockOwner {
  pid: number;
  host: string;
  nonce: string;
  /** ms since the epoch when taken */
  at: number;
}

export interface LockOptions {
  /** how long to wait for a live holder before failing (default 30 s) */
  timeoutMs?: number;
  /** a lock from another host older than this is stale (default 10 min) */
  staleMs?: number;
}

export class RegistryLockError extends Error {
  constructor(
    message: string,
    readonly lockFile: string,
    readonly owner: LockOwner | null,
  ) {
    super(message);
    this.name = 'RegistryLockError';
  }
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** The owner written in a lock file; null while it is being written (or unreadable), undefined when absent. */
export function readLockOwner(file: string): LockOwner | null | undefined {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw e;
  }
  try {
    const o = JSON.parse(text) as LockOwner;
    return typeof o.pid === 'number' && typeof o.nonce === 'string' ? o : null;
  } catch {
    return null;
  }
}

/** Why `owner` no longer holds the lock, or null when it may still be holding it. */
export function staleReason(owner: LockOwner, staleMs: number, now = Date.now()): string | null {
  if (owner.host === hostname()) return pidAlive(owner.pid) ? null : `its process ${owner.pid} is gone`;
  return now - owner.at > staleMs ? `it is ${Math.round((now - owner.at) / 1000)} s old (host ${owner.host})` : null;
}

function tryCreate(file: string, owner: LockOwner): boolean {
  try {
    writeFileSync(file, JSON.stringify(owner), { flag: 'wx', mode: 0o644 });
    return true;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw e;
  }
}

function unlinkQuiet(file: string): void {
  try {
    unlinkSync(file);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
  }
}

/** Removes the lock judged stale, unless it changed hands meanwhile. True when it was removed. */
function breakStale(file: string, stale: LockOwner): boolean {
  const guard = `${file}.break`;
  const me: LockOwner = { pid: process.pid, host: hostname(), nonce: randomBytes(8).toString('hex'), at: Date.now() };
  if (!tryCreate(guard, me)) {
    // a breaker that died inside this tiny window leaves its guard: old guards are removed
    try {
      if (Date.now() - statSync(guard).mtimeMs > 5000) unlinkQuiet(guard);
    } catch {
      // gone already
    }
    return false;
  }
  try {
    const now = readLockOwner(file);
    if (!now || now.nonce !== stale.nonce) return false;
    unlinkQuiet(file);
    return true;
  } finally {
    unlinkQuiet(guard);
  }
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Takes the lock file (waiting for a live holder, breaking a stale one) and returns its release function. */
export async function acquireLock(file: string, opts: LockOptions = {}): Promise<{ release: () => void; brokeStale: string | null }> {
  const timeoutMs = opts.timeoutMs ?? 30_000;
  const staleMs = opts.staleMs ?? 600_000;
  const owner: LockOwner = { pid: process.pid, host: hostname(), nonce: randomBytes(8).toString('hex'), at: Date.now() };
  const t0 = Date.now();
  let brokeStale: string | null = null;
  let wait = 2;
  for (;;) {
    owner.at = Date.now();
    if (tryCreate(file, owner)) break;
    const holder = readLockOwner(file);
    if (holder) {
      const why = staleReason(holder, staleMs);
      if (why && breakStale(file, holder)) {
        brokeStale = `removed a stale lock ${file}: ${why}`;
        continue;
      }
    }
    if (Date.now() - t0 > timeoutMs)
      throw new RegistryLockError(
        `${file}: still held after ${timeoutMs} ms${holder ? ` by pid ${holder.pid} on ${holder.host} since ${new Date(holder.at).toISOString()}` : ''}; if that process is gone from another host, delete the file`,
        file,
        holder ?? null,
      );
    await sleep(wait + Math.random() * wait);
    wait = Math.min(wait * 2, 50);
  }
  let released = false;
  return {
    brokeStale,
    release: () => {
      if (released) return;
      released = true;
      const now = readLockOwner(file);
      if (now && now.nonce === owner.nonce) unlinkQuiet(file);
    },
  };
}

/** Runs fn while holding the lock file. */
export async function withLock<R>(file: string, fn: () => Promise<R> | R, opts: LockOptions = {}): Promise<R> {
  const lock = await acquireLock(file, opts);
  try {
    return await fn();
  } finally {
    lock.release();
  }
}
