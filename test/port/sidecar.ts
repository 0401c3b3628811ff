// A sidecar started the way an Erlang port starts it (fds 3 and 4), and a client that speaks frames.
import { spawn, type ChildProcess } from 'node:child_process';
import { cpSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Readable, Writable } from 'node:stream';
import { encodeFrame, unpack } from '../../src/port/codec.js';

export const SIDECAR = join(process.cwd(), 'dist', 'src', 'port', 'main.js');

export type Msg = Record<string, unknown>;

/**
 * A fresh workspace holding a copy of the shipped examples/, and examples/run.json's config without its
 * generation metrics (the tests write their variants of it next to it).
 */
export function exampleWorkspace(prefix: string): { ws: string; cfg: Record<string, any> } {
  const ws = mkdtempSync(join(tmpdir(), prefix));
  cpSync(join(process.cwd(), 'examples'), join(ws, 'examples'), { recursive: true });
  const cfg = JSON.parse(readFileSync(join(ws, 'examples', 'run.json'), 'utf8'));
  delete cfg.eval.metrics;
  return { ws, cfg };
}

export class SidecarClient {
  readonly proc: ChildProcess;
  readonly in: Writable;
  readonly out: Readable;
  private buf = Buffer.alloc(0);
  private msgs: Msg[] = [];
  private waiters: ((m: Msg) => void)[] = [];
  readonly exited: Promise<number | null>;
  private nextId = 1;

  constructor(workspace: string, args: string[] = []) {
    this.proc = spawn(process.execPath, [SIDECAR, '--workspace', workspace, ...args], { stdio: ['ignore', 'pipe', 'inherit', 'pipe', 'pipe'] });
    this.in = this.proc.stdio[3] as Writable;
    this.out = this.proc.stdio[4] as Readable;
    this.in.on('error', () => {});
    this.exited = new Promise((r) => this.proc.on('exit', (code) => r(code)));
    this.out.on('data', (c: Buffer) => {
      this.buf = Buffer.concat([this.buf, c]);
      while (this.buf.length >= 4) {
        const n = this.buf.readUInt32BE(0);
        if (this.buf.length < 4 + n) break;
        const m = unpack(this.buf.subarray(4, 4 + n)) as Msg;
        this.buf = this.buf.subarray(4 + n);
        const w = this.waiters.shift();
        if (w) w(m);
        else this.msgs.push(m);
      }
    });
  }

  sendRaw(bytes: Buffer): void {
    this.in.write(bytes);
  }

  send(msg: unknown): void {
    this.in.write(encodeFrame(msg));
  }

  /** The next frame from the sidecar (any kind). */
  next(timeoutMs = 10_000): Promise<Msg> {
    const m = this.msgs.shift();
    if (m) return Promise.resolve(m);
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error('no frame from the sidecar in time')), timeoutMs);
      this.waiters.push((x) => {
        clearTimeout(t);
        resolve(x);
      });
    });
  }

  /** frames passed over by nextWhere, searched first by later calls */
  private stash: Msg[] = [];

  /** The first frame (passed over earlier, or new) that satisfies `pred`; new frames passed over are also put in `skipped`. */
  async nextWhere(pred: (m: Msg) => boolean, timeoutMs = 10_000, skipped: Msg[] = []): Promise<Msg> {
    const i = this.stash.findIndex(pred);
    if (i >= 0) return this.stash.splice(i, 1)[0];
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const m = await this.next(Math.max(1, deadline - Date.now()));
      if (pred(m)) return m;
      this.stash.push(m);
      skipped.push(m);
    }
  }

  /** Sends a request and waits for its reply (logs and events on the way are skipped). */
  async call(method: string, params?: unknown, skipped: Msg[] = []): Promise<Msg> {
    const id = this.nextId++;
    this.send({ id, method, params });
    return this.nextWhere((m) => m.id === id && ('result' in m || 'error' in m), 30_000, skipped);
  }

  async close(): Promise<number | null> {
    this.in.end();
    return this.exited;
  }
}
