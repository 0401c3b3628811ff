// Long work runs as a job: its start request is answered at once with the job id, then the job streams
// events { job, seq, event, data } and ends with exactly one terminal event: done (data: the result),
// failed (data: { code, message, details }) or cancelled.
//
// Flow control: a job may have at most `credits` progress events sent and not yet acknowledged (the
// client returns credits with events.ack as its subscribers keep up). While it has none, events wait in
// a bounded queue in which a coalescing event (progress) replaces the waiting one of the same name, so
// a slow reader sees the latest state, not a backlog. Producers that must not lose events (tokens) await
// `room()`. Terminal events need no credit.
import { randomUUID } from 'node:crypto';
import { PortError, type ErrorPayload } from './errors.js';

export type JobStatus = 'running' | 'done' | 'failed' | 'cancelled';
export const TERMINAL_EVENTS = ['done', 'failed', 'cancelled'] as const;

export interface JobEvent {
  job: string;
  seq: number;
  event: string;
  data: unknown;
}

export interface JobSummary {
  job: string;
  method: string;
  status: JobStatus;
  startedAt: string;
  endedAt: string | null;
  credits: number;
  queued: number;
  eventsSent: number;
}

const MAX_QUEUE = 256;

export class Job {
  status: JobStatus = 'running';
  readonly startedAt = new Date();
  endedAt: Date | null = null;
  result: unknown = undefined;
  error: ErrorPayload | null = null;
  readonly abort = new AbortController();
  /** called when the sidecar must stop (its input closed): save what lets the job resume */
  onCheckpoint: ((reason: string) => Promise<void> | void) | undefined;
  private seq = 0;
  private eventsSent = 0;
  private queue: { event: string; data: unknown; coalesce: boolean; terminal: boolean }[] = [];
  private roomWaiters: (() => void)[] = [];

  constructor(
    readonly id: string,
    readonly method: string,
    public credits: number,
    private readonly registry: JobRegistry,
  ) {}

  /** Queues an event; a coalescing one replaces a waiting event of the same name. False when the queue is full. */
  emit(event: string, data: unknown, opts: { coalesce?: boolean } = {}): boolean {
    if (this.status !== 'running') return false;
    const coalesce = opts.coalesce ?? false;
    if (coalesce) {
      const i = this.queue.findIndex((e) => e.event === event && e.coalesce);
      if (i >= 0) {
        this.queue[i].data = data;
        this.registry.pump(this);
        return true;
      }
    }
    if (this.queue.length >= MAX_QUEUE) return false;
    this.queue.push({ event, data, coalesce, terminal: false });
    this.registry.pump(this);
    return true;
  }

  /** Resolves when the event queue has room again. */
  room(): Promise<void> {
    if (this.queue.length < MAX_QUEUE || this.status !== 'running') return Promise.resolve();
    return new Promise((r) => this.roomWaiters.push(r));
  }

  finish(status: Exclude<JobStatus, 'running'>, data: unknown): void {
    if (this.status !== 'running') return;
    this.status = status;
    this.endedAt = new Date();
    if (status === 'done') this.result = data;
    if (status === 'failed') this.error = data as ErrorPayload;
    // waiting progress is superseded by the outcome; events that must not be lost (tokens) stay ahead of
    // it, except when the client cancelled: then nothing waits for credits in front of the cancelled event
    this.queue = status === 'cancelled' ? [] : this.queue.filter((e) => !e.coalesce);
    this.queue.push({ event: status, data: data ?? null, coalesce: false, terminal: true });
    // a producer waiting for room learns that the job ended (its emits are now no-ops)
    this.roomWaiters.splice(0).forEach((r) => r());
    this.registry.pump(this);
  }

  cancel(reason = 'cancelled by the client'): boolean {
    if (this.status !== 'running') return false;
    this.abort.abort(new PortError('cancelled', reason));
    this.finish('cancelled', { reason });
    return true;
  }

  /** The next event that may be sent now (credits allowing), or undefined. */
  takeSendable(): JobEvent | undefined {
    const head = this.queue[0];
    if (!head || (!head.terminal && this.credits <= 0)) return undefined;
    this.queue.shift();
    if (!head.terminal) this.credits--;
    this.eventsSent++;
    if (this.roomWaiters.length && this.queue.length < MAX_QUEUE) this.roomWaiters.splice(0).forEach((r) => r());
    return { job: this.id, seq: ++this.seq, event: head.event, data: head.data };
  }

  get queued(): number {
    return this.queue.length;
  }

  summary(): JobSummary {
    return {
      job: this.id,
      method: this.method,
      status: this.status,
      startedAt: this.startedAt.toISOString(),
      endedAt: this.endedAt?.toISOString() ?? null,
      credits: this.credits,
      queued: this.queue.length,
      eventsSent: this.eventsSent,
    };
  }
}

export class JobRegistry {
  private jobs = new Map<string, Job>();
  /** finished jobs kept for jobs.status, oldest dropped first */
  private readonly keepFinished = 100;

  constructor(
    /** sends one event; returns false when the output is congested (pumping stops until resume()) */
    private readonly send: (ev: JobEvent) => boolean,
    private readonly maxRunning: number,
  ) {}

  private congested = false;

  create(method: string, id: string | undefined, credits: number): Job {
    if (this.running().length >= this.maxRunning) throw new PortError('busy', `${this.maxRunning} jobs are running; wait for one to end`, { running: this.maxRunning });
    const jobId = id ?? randomUUID();
    const prev = this.jobs.get(jobId);
    if (prev?.status === 'running') throw new PortError('invalid_params', `a job named '${jobId}' is already running`, { path: 'params.job' });
    const job = new Job(jobId, method, credits, this);
    this.jobs.delete(jobId);
    this.jobs.set(jobId, job);
    this.trim();
    return job;
  }

  get(id: string): Job {
    const j = this.jobs.get(id);
    if (!j) throw new PortError('job_not_found', `no job '${id}'`, { job: id });
    return j;
  }

  list(): Job[] {
    return [...this.jobs.values()];
  }

  running(): Job[] {
    return this.list().filter((j) => j.status === 'running');
  }

  grant(id: string, credits: number): void {
    const j = this.jobs.get(id);
    if (!j) return; // acks may trail a finished job
    j.credits += credits;
    this.pump(j);
  }

  pump(job: Job): void {
    if (this.congested) return;
    for (let ev = job.takeSendable(); ev; ev = job.takeSendable()) {
      if (!this.send(ev)) {
        this.congested = true;
        return;
      }
    }
  }

  /** The output drained: send what waits. */
  resume(): void {
    this.congested = false;
    for (const j of this.jobs.values()) {
      this.pump(j);
      if (this.congested) return;
    }
  }

  private trim(): void {
    const finished = this.list().filter((j) => j.status !== 'running');
    for (const j of finished.slice(0, Math.max(0, finished.length - this.keepFinished))) this.jobs.delete(j.id);
  }
}
