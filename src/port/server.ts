// The sidecar's loop: frames in on one stream (fd 3), frames out on another (fd 4), requests dispatched
// through the method table, many at a time.
//
// Bounded both ways: a frame is at most maxFrameBytes (a longer one is skipped unread and refused);
// reading pauses while maxInFlight requests are unanswered or while the output holds more than
// outputHighWaterBytes (a slow reader makes the BEAM's writes block, not our memory grow); job events
// are flow-controlled by credits (jobs.ts). When the input ends (the BEAM closed the port or died, even
// by SIGKILL) the server checkpoints its jobs, closes its logs and stops within exitGraceMs. A broken
// output (EPIPE) is the same news.
import type { Readable, Writable } from 'node:stream';
import { CollectionLog } from '../data/collect/log.js';
import { encodeFrame, encodeFrameChunks, unpack } from './codec.js';
import { PortError, toErrorPayload, type ErrorPayload } from './errors.js';
import { FrameReader } from './frames.js';
import { JobRegistry, type JobEvent } from './jobs.js';
import { METHODS, type CallContext, type MethodSpec } from './methods.js';
import { Workspace } from './workspace.js';
import { ModelCache } from './models.js';
import { closeDeployServices } from './deploy.js';

export type LogLevel = 'debug' | 'info' | 'warning' | 'error';
const LEVELS: Record<LogLevel, number> = { debug: 0, info: 1, warning: 2, error: 3 };

export interface ServerOptions {
  workspace: string;
  input: Readable;
  output: Writable;
  maxFrameBytes?: number;
  maxInFlight?: number;
  maxJobs?: number;
  outputHighWaterBytes?: number;
  exitGraceMs?: number;
  logLevel?: LogLevel;
  /** the deployment registry store (default .starweave/registry in the workspace) */
  registry?: string;
  /** method table (tests add methods); defaults to METHODS */
  methods?: Record<string, MethodSpec>;
}

type RequestId = number | string | bigint;

export const DEFAULTS = {
  maxFrameBytes: 64 << 20,
  maxInFlight: 256,
  maxJobs: 4,
  outputHighWaterBytes: 8 << 20,
  exitGraceMs: 3000,
};

export class PortServer {
  readonly workspace: Workspace;
  private readonly opts: Required<Omit<ServerOptions, 'workspace' | 'input' | 'output' | 'methods' | 'registry'>> & { registry?: string };
  private readonly methods: Record<string, MethodSpec>;
  private readonly reader: FrameReader;
  private readonly jobs: JobRegistry;
  private readonly inFlight = new Map<string, LazyAbort>();
  /** what every request's context shares (built once: a context per request is a hot-path cost) */
  private readonly ctxBase: Omit<CallContext, 'signal'>;
  private readonly logs = new Map<string, Promise<CollectionLog>>();
  private readonly models = new ModelCache();
  private readonly pauses = new Set<'inflight' | 'output'>();
  private closing: Promise<number> | undefined;
  private outputBroken = false;
  private resolveDone!: (code: number) => void;
  /** resolves with the exit code once the server has stopped */
  readonly done = new Promise<number>((r) => (this.resolveDone = r));

  constructor(private readonly io: ServerOptions) {
    this.opts = { ...DEFAULTS, logLevel: 'info', ...stripUndefined(io) } as PortServer['opts'];
    this.methods = io.methods ?? METHODS;
    this.workspace = new Workspace(io.workspace);
    this.reader = new FrameReader(this.opts.maxFrameBytes, {
      frame: (b) => this.onFrame(b),
      oversize: (length, id) =>
        this.replyError(id, { code: 'frame_too_large', message: `a frame of ${length} bytes is over the maximum of ${this.opts.maxFrameBytes}; it was skipped unread`, details: { bytes: length, max: this.opts.maxFrameBytes } }),
    });
    this.jobs = new JobRegistry((ev) => this.sendEvent(ev), this.opts.maxJobs);
    this.ctxBase = this.contextBase();
  }

  start(): this {
    const { input, output } = this.io;
    input.on('data', (chunk: Buffer) => this.reader.push(chunk));
    input.on('end', () => void this.stop('its input closed'));
    input.on('close', () => void this.stop('its input closed'));
    input.on('error', (e) => void this.stop(`its input failed: ${e.message}`));
    output.on('error', (e: NodeJS.ErrnoException) => {
      this.outputBroken = true;
      void this.stop(`its output failed: ${e.code ?? e.message}`);
    });
    output.on('drain', () => {
      this.setPaused('output', false);
      this.jobs.resume();
    });
    this.log('info', 'sidecar ready', { pid: process.pid, workspace: this.workspace.root, maxFrameBytes: this.opts.maxFrameBytes });
    return this;
  }

  /**
   * For an input socket created with `onread: { buffer: () => server.readTarget(), callback: (n, b) =>
   * server.received(n, b) }`: reads land where the frame reader wants them (a large frame's bytes straight
   * into its buffer, no copy; small frames as views of a slab, no allocation per read).
   */
  readTarget(): Buffer {
    return this.reader.readTarget();
  }

  received(n: number, buf: Buffer): boolean {
    this.reader.received(n, buf);
    return true;
  }

  /** A log line for the client's Logger (dropped below the configured level). */
  log(level: LogLevel, message: string, data: Record<string, unknown> = {}): void {
    if (LEVELS[level] < LEVELS[this.opts.logLevel]) return;
    this.write({ log: level, message, data });
  }

  /** Checkpoints running jobs, closes the collection logs, flushes, and resolves `done`. */
  stop(reason: string): Promise<number> {
    if (this.closing) return this.closing;
    this.closing = (async () => {
      this.io.input.pause();
      this.log('info', `sidecar stopping: ${reason}`);
      const work = (async () => {
        await Promise.allSettled(
          this.jobs.running().map(async (j) => {
            await j.onCheckpoint?.(reason);
            j.cancel(`the sidecar stopped: ${reason}`);
          }),
        );
        for (const c of this.inFlight.values()) c.abort(new PortError('shutting_down', reason));
        await Promise.allSettled([...this.logs.values()].map(async (l) => (await l).close()));
        await this.models.clear().catch(() => undefined);
        await closeDeployServices();
      })();
      await Promise.race([work, delay(this.opts.exitGraceMs)]);
      if (!this.outputBroken) await Promise.race([new Promise<void>((r) => this.io.output.end(() => r())), delay(500)]);
      this.io.input.destroy();
      this.resolveDone(0);
      return 0;
    })();
    return this.closing;
  }

  private onFrame(body: Buffer): void {
    let msg: unknown;
    try {
      msg = unpack(body);
    } catch (e) {
      this.replyError(null, { code: 'malformed_frame', message: `the frame is not one MessagePack value: ${(e as Error).message}`, details: { bytes: body.length } });
      return;
    }
    if (typeof msg !== 'object' || msg === null || Array.isArray(msg)) {
      this.replyError(null, { code: 'invalid_request', message: 'a request is a map of { id, method, params }', details: {} });
      return;
    }
    const req = msg as { id?: unknown; method?: unknown; params?: unknown };
    const id = req.id === undefined || req.id === null ? null : req.id;
    if (id !== null && typeof id !== 'number' && typeof id !== 'string' && typeof id !== 'bigint') {
      this.replyError(null, { code: 'invalid_request', message: 'id must be an integer or a string', details: {} });
      return;
    }
    if (typeof req.method !== 'string') {
      this.replyError(id, { code: 'invalid_request', message: 'method must be a string', details: {} });
      return;
    }
    this.dispatch(id as RequestId | null, req.method, req.params);
  }

  // Not async: a synchronous method (ping) is answered in the same tick without a promise; only a
  // method that returns one continues in settle().
  private dispatch(id: RequestId | null, method: string, rawParams: unknown): void {
    const spec = Object.hasOwn(this.methods, method) ? this.methods[method] : undefined;
    if (!spec) return this.replyError(id, { code: 'unknown_method', message: `no method '${method}'`, details: { method, methods: Object.keys(this.methods) } });
    if (spec.kind === 'pending') {
      return this.replyError(id, { code: 'not_implemented', message: `'${method}' is part of the protocol but ${spec.what} have not landed yet (issue ${spec.issue})`, details: { method, issue: spec.issue } });
    }
    if (this.closing) return this.replyError(id, { code: 'shutting_down', message: 'the sidecar is stopping', details: {} });
    const parsed = spec.params.safeParse(rawParams ?? undefined);
    if (!parsed.success) return this.replyError(id, toErrorPayload(parsed.error));
    const controller = new LazyAbort();
    let result: unknown;
    try {
      const ctx = new RequestContext(this.ctxBase, controller);
      if (spec.kind === 'call') {
        result = spec.run(parsed.data, ctx);
      } else {
        const p = parsed.data as { job?: string; credits?: number };
        const runner = spec.run(parsed.data, ctx);
        const job = this.jobs.create(method, p.job, p.credits ?? 0);
        result = { job: job.id, status: 'running' };
        // the reply goes first: every event of the job follows it on the wire
        queueMicrotask(() => {
          runner(job).then(
            (r) => job.finish('done', r),
            (e: unknown) => (job.status === 'running' ? job.finish('failed', toErrorPayload(e)) : undefined),
          );
        });
      }
    } catch (e) {
      return this.settled(id, null, controller, undefined, e ?? new Error('thrown: undefined'));
    }
    if (isThenable(result)) {
      // only a request still running after this tick can be cancelled, or counts as in flight (nothing
      // else runs before a synchronous method's reply is written)
      const key = id === null ? null : typeof id === 'string' ? id : String(id);
      if (key !== null) this.inFlight.set(key, controller);
      if (this.inFlight.size >= this.opts.maxInFlight) this.setPaused('inflight', true);
      result.then(
        (r) => this.settled(id, key, controller, r, undefined),
        (e: unknown) => this.settled(id, key, controller, undefined, e ?? new Error('rejected')),
      );
    } else this.settled(id, null, controller, result, undefined);
  }

  /** A request's outcome: its reply (unless cancelled meanwhile), and its in-flight slot freed. */
  private settled(id: RequestId | null, key: string | null, controller: LazyAbort, result: unknown, error: unknown): void {
    try {
      if (!controller.aborted) {
        if (error === undefined) this.reply(id, result);
        else this.replyError(id, toErrorPayload(error));
      }
    } finally {
      if (key !== null) this.inFlight.delete(key);
      if (this.pauses.has('inflight') && this.inFlight.size < this.opts.maxInFlight) this.setPaused('inflight', false);
    }
  }

  private contextBase(): Omit<CallContext, 'signal'> {
    return {
      workspace: this.workspace,
      log: (level, message, data) => this.log(level, message, data),
      collectionLog: (dir) => {
        let l = this.logs.get(dir);
        if (!l) {
          l = CollectionLog.open(dir);
          this.logs.set(dir, l);
          l.then(
            (log) => log.recovery?.cutBytes && this.log('warning', `collection log ${this.workspace.relative(dir)}: cut a torn tail of ${log.recovery.cutBytes} bytes`, { ...log.recovery }),
            () => this.logs.delete(dir),
          );
        }
        return l;
      },
      jobs: this.jobs,
      models: this.models,
      grant: (job, credits) => this.jobs.grant(job, credits),
      cancelRequest: (rid) => {
        const c = this.inFlight.get(String(rid));
        if (!c) return false;
        c.abort(new PortError('cancelled', 'cancelled by the client'));
        return true;
      },
      settings: { maxFrameBytes: this.opts.maxFrameBytes, maxInFlight: this.opts.maxInFlight, maxJobs: this.opts.maxJobs, registry: this.opts.registry },
    };
  }

  private reply(id: RequestId | null, result: unknown): void {
    if (id === null) return; // a notification
    this.write({ id, result: result ?? null });
  }

  private replyError(id: RequestId | null, error: ErrorPayload): void {
    if (id === null && error.code !== 'malformed_frame' && error.code !== 'frame_too_large' && error.code !== 'invalid_request') {
      this.log('warning', `notification failed: ${error.message}`, { code: error.code });
      return;
    }
    this.write({ id, error });
  }

  private sendEvent(ev: JobEvent): boolean {
    return this.write(ev);
  }

  /** Writes one frame; false (and input paused) when the output holds more than its high-water mark. */
  private write(msg: unknown): boolean {
    if (this.outputBroken) return true;
    let frame: Buffer[];
    try {
      frame = encodeFrameChunks(msg);
    } catch (e) {
      const id = (msg as { id?: unknown }).id;
      if (id === undefined) throw e;
      frame = [encodeFrame({ id, error: { code: 'internal', message: `the reply could not be encoded: ${(e as Error).message}`, details: {} } })];
    }
    let bytes = 0;
    for (const c of frame) bytes += c.length;
    if (bytes - 4 > this.opts.maxFrameBytes && (msg as { id?: unknown }).id !== undefined) {
      frame = [encodeFrame({ id: (msg as { id: unknown }).id, error: { code: 'frame_too_large', message: `the reply of ${bytes - 4} bytes is over the maximum frame of ${this.opts.maxFrameBytes}`, details: { bytes: bytes - 4, max: this.opts.maxFrameBytes } } })];
    }
    if (frame.length === 1) this.io.output.write(frame[0]);
    else {
      // big bins go out by reference: one gathered write (writev) of the frame's pieces
      this.io.output.cork();
      for (const c of frame) this.io.output.write(c);
      this.io.output.uncork();
    }
    const congested = this.io.output.writableLength > this.opts.outputHighWaterBytes;
    if (congested) this.setPaused('output', true);
    return !congested;
  }

  private setPaused(reason: 'inflight' | 'output', on: boolean): void {
    if (on) this.pauses.add(reason);
    else this.pauses.delete(reason);
    if (this.closing) return;
    if (this.pauses.size) this.io.input.pause();
    else this.io.input.resume();
  }
}

/**
 * A request's abort: the AbortController (costly to create, and most requests never look at their
 * signal) is made only when the method reads `signal`; an abort before that is replayed on it.
 */
class LazyAbort {
  aborted = false;
  reason: unknown;
  private controller: AbortController | undefined;

  get signal(): AbortSignal {
    if (!this.controller) {
      this.controller = new AbortController();
      if (this.aborted) this.controller.abort(this.reason);
    }
    return this.controller.signal;
  }

  abort(reason: unknown): void {
    if (this.aborted) return;
    this.aborted = true;
    this.reason = reason;
    this.controller?.abort(reason);
  }
}

/** A method's CallContext: the server's shared parts and this request's (lazy) signal. */
class RequestContext implements CallContext {
  readonly workspace: CallContext['workspace'];
  readonly log: CallContext['log'];
  readonly collectionLog: CallContext['collectionLog'];
  readonly jobs: CallContext['jobs'];
  readonly models: CallContext['models'];
  readonly grant: CallContext['grant'];
  readonly cancelRequest: CallContext['cancelRequest'];
  readonly settings: CallContext['settings'];

  constructor(
    base: Omit<CallContext, 'signal'>,
    private readonly abort: LazyAbort,
  ) {
    this.workspace = base.workspace;
    this.log = base.log;
    this.collectionLog = base.collectionLog;
    this.jobs = base.jobs;
    this.models = base.models;
    this.grant = base.grant;
    this.cancelRequest = base.cancelRequest;
    this.settings = base.settings;
  }

  get signal(): AbortSignal {
    return this.abort.signal;
  }
}

const isThenable = (v: unknown): v is PromiseLike<unknown> =>
  v !== null && (typeof v === 'object' || typeof v === 'function') && typeof (v as { then?: unknown }).then === 'function';

const delay = (ms: number) => new Promise<void>((r) => setTimeout(r, ms).unref());

function stripUndefined<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}
