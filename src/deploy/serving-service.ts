// The deployment side as one service with a method table, for the Erlang port (and any other RPC face):
// a registry store, the serving engine over it, one A/B router and one monitor per channel. Each method
// has a zod params schema and returns plain JSON; file paths in params (source, run, base, suite) go
// through resolvePath (the port passes its workspace confinement). Drift alarms of every channel are
// re-emitted as 'alarm' events.
import { EventEmitter } from 'node:events';
import { z } from 'zod';
import { formatPath } from '../data/errors.js';
import { PromoteParams, RegisterParams, Registry } from './registry.js';
import { promoteWithTests, testVersion } from './integration.js';
import { DriftConfig, Monitor } from './monitor.js';
import type { DriftAlarm } from './monitor.js';
import { Router } from './router.js';
import { ServeRequest, ServingEngine } from './serving.js';
import type { ServingOptions } from './serving.js';

export interface DeploymentOptions {
  /** the registry store directory */
  store: string;
  serving?: ServingOptions;
  /** the drift alarm of every channel's monitor (monitor.configure changes one channel's) */
  drift?: DriftConfig;
  /** maps a path given in params to the path used (and refuses one outside what is allowed) */
  resolvePath?: (path: string, field: string) => string;
}

export class DeployParamsError extends Error {
  constructor(
    readonly method: string,
    readonly issues: { path: string; message: string }[],
  ) {
    super(`${method}: invalid params: ${issues.map((i) => `${i.path}: ${i.message}`).join('; ')}`);
    this.name = 'DeployParamsError';
  }
}

const channelName = z.string().min(1);
const versionSpec = z.string().min(1);

interface DeployMethod<S extends z.ZodType> {
  summary: string;
  params: S;
  run: (svc: DeploymentService, p: z.output<S>) => unknown;
}
const method = <S extends z.ZodType>(summary: string, params: S, run: (svc: DeploymentService, p: z.output<S>) => unknown): DeployMethod<z.ZodType> =>
  ({ summary, params, run }) as DeployMethod<z.ZodType>;

const GenerateParams = ServeRequest.extend({
  /** serve through the channel's router (A/B split, monitor) */
  channel: channelName.optional(),
  /** or one version directly (id, tag, hash prefix, @channel) */
  version: versionSpec.optional(),
  key: z.string().min(1).optional(),
}).refine((p) => (p.channel === undefined) !== (p.version === undefined), { message: 'give channel or version (one of them)', path: ['channel'] });

/** Every method of the service: name -> summary, params schema, what runs it. */
export const DEPLOY_METHODS: Record<string, DeployMethod<z.ZodType>> = {
  'registry.list': method('the versions (with tags and serving channels) and the channels', z.strictObject({}), (svc) => ({
    versions: svc.registry.list().map((v) => {
      const s = svc.registry.show(v.id);
      return { ...v, tags: s.tags, channels: s.channels };
    }),
    channels: svc.registry.channels(),
  })),
  'registry.show': method('one version: files, lineage, metrics, tests, tags, channels', z.strictObject({ version: versionSpec }), (svc, p) => svc.registry.show(p.version)),
  'registry.register': method('registers an artifact directory (or a run directory) as a version', RegisterParams, (svc, p) =>
    svc.registry.register({ ...p, source: svc.path(p.source, 'source'), run: p.run && svc.path(p.run, 'run'), base: p.base && svc.path(p.base, 'base') }),
  ),
  'registry.tag': method('points a tag at a version', z.strictObject({ version: versionSpec, tag: z.string().min(1) }), (svc, p) => svc.registry.tag(p.version, p.tag)),
  'registry.promote': method(
    'makes a version what a channel serves; with suite, only when the integration suite passes',
    PromoteParams.extend({ suite: z.string().min(1).optional() }),
    async (svc, p) => {
      if (p.suite === undefined) return { promoted: true, entry: await svc.registry.promote(p), result: null, failures: null };
      return promoteWithTests(svc.engine, { version: p.version, channel: p.channel, suite: svc.path(p.suite, 'suite'), reason: p.reason });
    },
  ),
  'registry.rollback': method('takes a channel back to the version it served before', z.strictObject({ channel: channelName, reason: z.string().optional() }), (svc, p) => svc.registry.rollback(p.channel, p.reason)),
  'registry.history': method('the promotions and rollbacks of a channel', z.strictObject({ channel: channelName }), (svc, p) => svc.registry.history(p.channel)),
  'registry.test': method('runs an integration suite against a version and stores the result', z.strictObject({ version: versionSpec, suite: z.string().min(1) }), (svc, p) => testVersion(svc.engine, p.version, svc.path(p.suite, 'suite'))),
  'registry.events': method(
    'the audit log (from index `since`, at most `limit` entries)',
    z.strictObject({ since: z.number().int().min(0).default(0), limit: z.number().int().min(1).max(10_000).default(1000) }),
    (svc, p) => {
      const all = svc.registry.events();
      return { events: all.slice(p.since, p.since + p.limit), next: Math.min(all.length, p.since + p.limit) };
    },
  ),
  'serve.generate': method('answers a conversation, through a channel (A/B, monitored) or with one version', GenerateParams, async (svc, p) => {
    const { channel, version, key, ...req } = p;
    if (version !== undefined) return svc.engine.generate(version, req);
    return svc.router(channel!).generate({ ...req, key });
  }),
  'ab.configure': method(
    'sets a channel\'s A/B split: candidate version (null: none), its share, the salt',
    // no defaults here: a field left out keeps its value
    z.strictObject({ channel: channelName, candidate: versionSpec.nullable().optional(), candidateShare: z.number().min(0).max(1).optional(), salt: z.string().optional() }),
    (svc, p) => {
      const r = svc.router(p.channel);
      r.configure(p);
      return r.settings;
    },
  ),
  'ab.rate': method('a user rating of a served answer', z.strictObject({ channel: channelName, requestId: z.string().min(1), score: z.number().finite() }), (svc, p) => svc.router(p.channel).rate(p.requestId, p.score)),
  'ab.report': method('the A/B comparison of a channel', z.strictObject({ channel: channelName }), (svc, p) => svc.router(p.channel).report()),
  'monitor.snapshot': method('a channel\'s counters, latency histograms, drift window and alarms', z.strictObject({ channel: channelName }), (svc, p) => svc.monitor(p.channel).snapshot()),
  'monitor.exposition': method('the Prometheus text of every channel\'s monitor', z.strictObject({}), (svc) => ({ text: svc.exposition() })),
  'monitor.configure': method('replaces a channel\'s drift alarm settings (thresholds, window, autoRollback; fields left out take their defaults)', DriftConfig.extend({ channel: channelName }), (svc, p) => {
    const { channel, ...drift } = p;
    svc.monitor(channel).configure(drift);
    return svc.monitor(channel).drift;
  }),
};

export class DeploymentService extends EventEmitter {
  readonly registry: Registry;
  readonly engine: ServingEngine;
  private readonly routers = new Map<string, Router>();
  private readonly monitors = new Map<string, Monitor>();

  constructor(private readonly opts: DeploymentOptions) {
    super();
    this.registry = new Registry(opts.store);
    this.engine = new ServingEngine(this.registry, opts.serving);
    if (opts.drift) DriftConfig.parse(opts.drift);
  }

  /** A path from params, through resolvePath. */
  path(p: string, field: string): string {
    return this.opts.resolvePath ? this.opts.resolvePath(p, field) : p;
  }

  /** The channel's monitor (created on first use with the service's drift config). */
  monitor(channel: string): Monitor {
    let m = this.monitors.get(channel);
    if (!m) {
      m = new Monitor({ channel, registry: this.registry, drift: this.opts.drift });
      m.on('alarm', (a: DriftAlarm) => this.emit('alarm', a));
      this.monitors.set(channel, m);
    }
    return m;
  }

  /** The channel's router (created on first use: all traffic to the channel's version). */
  router(channel: string): Router {
    let r = this.routers.get(channel);
    if (!r) {
      r = new Router(this.engine, { channel }, { monitor: this.monitor(channel) });
      this.routers.set(channel, r);
    }
    return r;
  }

  exposition(): string {
    return [...this.monitors.values()].map((m) => m.exposition()).join('');
  }

  /** Runs a method by name with params validated by its schema (errors name each field path). */
  async call(name: string, params: unknown): Promise<unknown> {
    const m = DEPLOY_METHODS[name];
    if (!m) throw new DeployParamsError(name, [{ path: '(method)', message: `unknown method; methods: ${Object.keys(DEPLOY_METHODS).join(', ')}` }]);
    const r = m.params.safeParse(params ?? {});
    if (!r.success) throw new DeployParamsError(name, r.error.issues.map((i) => ({ path: formatPath(i.path), message: i.message })));
    return m.run(this, r.data);
  }

  /** Waits for the monitors' pending alarm handling, then unloads every version. */
  async close(): Promise<void> {
    await Promise.all([...this.monitors.values()].map((m) => m.idle()));
    await this.engine.close();
  }
}

