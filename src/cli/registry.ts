// `starweave-ft registry list|show|register|tag|untag|promote|rollback|history|test|verify|events`: the model registry
// (src/deploy/registry.ts) at a terminal. Thin: every command is one library call.
import { resolve } from 'node:path';
import { Registry } from '../deploy/registry.js';
import type { VersionRecord } from '../deploy/registry.js';
import { formatFailures, promoteWithTests, testVersion } from '../deploy/integration.js';
import type { SuiteResult } from '../deploy/integration.js';
import { ServingEngine } from '../deploy/serving.js';

export const REGISTRY_USAGE = `usage: starweave-ft registry <command> [--store DIR] [--json]

  list                                 versions (id, kind, hash, run, base, tags, channels) and channels
  show VERSION                         one version: files, lineage, metrics, tests
  register SOURCE [--run RUN_DIR] [--base MODEL_DIR] [--dataset VERSION] [--notes TEXT] [--tag NAME]...
                  [--hardlink]         register an artifact: a PEFT adapter dir, a run dir (its adapter/),
                                       a merged model dir, or a GGUF / ONNX export dir
  tag VERSION NAME                     point a tag at a version
  untag NAME                           remove a tag
  promote VERSION CHANNEL [--suite FILE] [--reason TEXT] [--force]
                                       make VERSION what CHANNEL serves; with --suite, only if the
                                       integration suite passes (failures listed, exit 1)
  rollback CHANNEL [--reason TEXT]     back to the version CHANNEL served before
  history CHANNEL                      promotions and rollbacks of a channel
  test VERSION --suite FILE            run an integration suite (JSON / YAML) and store the result
  verify VERSION                       recompute the stored files' hashes
  events                               the audit log (register, tag, promote, rollback, test, drift_alarm)

VERSION: an id (v3), a tag, a content-hash prefix, or @CHANNEL. The store is --store DIR, else
$STARWEAVE_REGISTRY, else .starweave/registry.`;

class UsageError extends Error {}

function parseArgs(args: string[]): { pos: string[]; opts: Map<string, string[]>; flags: Set<string> } {
  const pos: string[] = [];
  const opts = new Map<string, string[]>();
  const flags = new Set<string>();
  const valued = new Set(['--store', '--run', '--base', '--dataset', '--notes', '--tag', '--suite', '--reason']);
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    if (valued.has(a)) {
      const v = args[++i];
      if (v === undefined) throw new UsageError(`${a} needs a value`);
      opts.set(a, [...(opts.get(a) ?? []), v]);
    } else if (a.startsWith('--')) {
      if (!['--json', '--hardlink', '--force', '--help'].includes(a)) throw new UsageError(`unknown option ${a}`);
      flags.add(a);
    } else pos.push(a);
  }
  return { pos, opts, flags };
}

const short = (h: string) => h.slice(0, 12);

function versionLine(v: VersionRecord, tags: string[], channels: string[]): string {
  const run = v.lineage.run ? ` run ${v.lineage.run.id}` : '';
  const base = v.lineage.base ? ` base ${v.lineage.base.name}` : '';
  const extra = [...tags.map((t) => `#${t}`), ...channels.map((c) => `@${c}`)].join(' ');
  const test = v.tests.at(-1);
  return `${v.id.padEnd(5)} ${v.kind.padEnd(13)} ${short(v.contentHash)} ${(v.bytes / 2 ** 20).toFixed(2).padStart(8)} MiB${run}${base}${test ? ` test:${test.passed ? 'pass' : 'FAIL'}` : ''}${extra ? '  ' + extra : ''}`;
}

function printSuite(r: SuiteResult): void {
  console.log(`suite ${r.suite} on ${r.version}: ${r.total - r.failed}/${r.total} passed (${r.seconds.toFixed(2)} s)`);
  for (const c of r.cases) console.log(`  ${c.passed ? 'ok  ' : 'FAIL'} ${c.name}${c.latencyMs !== null ? ` (${c.latencyMs.toFixed(0)} ms, ${c.completionTokens} tokens)` : ''}`);
  if (!r.passed) console.log(`failures:\n${formatFailures(r)}`);
}

/** args: the words after `starweave-ft registry`. Returns the exit code. */
export async function runRegistryCommand(args: string[]): Promise<number> {
  let parsed: ReturnType<typeof parseArgs>;
  try {
    parsed = parseArgs(args);
  } catch (e) {
    console.error(`starweave-ft registry: ${(e as Error).message}\n\n${REGISTRY_USAGE}`);
    return 2;
  }
  const { pos, opts, flags } = parsed;
  const [cmd, a, b] = pos;
  if (!cmd || flags.has('--help') || cmd === 'help') {
    console.log(REGISTRY_USAGE);
    return cmd || flags.has('--help') ? 0 : 2;
  }
  const json = flags.has('--json');
  const one = (name: string) => opts.get(name)?.at(-1);
  const store = resolve(one('--store') ?? process.env.STARWEAVE_REGISTRY ?? '.starweave/registry');
  const reg = new Registry(store);
  const out = (value: unknown, text: () => void) => (json ? console.log(JSON.stringify(value)) : text());
  const need = (v: string | undefined, what: string) => {
    if (!v) throw new UsageError(`registry ${cmd} needs ${what}`);
    return v;
  };
  try {
    switch (cmd) {
      case 'list': {
        const ix = reg.read();
        const versions = reg.list().map((v) => {
          const s = reg.show(v.id);
          return { ...v, tags: s.tags, channels: s.channels };
        });
        out({ store, versions, channels: reg.channels() }, () => {
          if (!versions.length) console.log(`no versions in ${store}`);
          for (const v of versions) console.log(versionLine(v, v.tags, v.channels));
          for (const [n, c] of Object.entries(ix.channels)) console.log(`channel ${n}: ${c.stack.at(-1) ?? '(empty)'} (${c.stack.length} deep)`);
        });
        return 0;
      }
      case 'show': {
        const v = reg.show(need(a, 'VERSION'));
        out(v, () => {
          console.log(versionLine(v, v.tags, v.channels));
          console.log(`dir ${v.dir}\ncontent sha256 ${v.contentHash}\ncreated ${v.createdAt}${v.notes ? `\nnotes: ${v.notes}` : ''}\nsource ${v.source}`);
          for (const f of v.files) console.log(`  ${f.path}  ${f.size} bytes  ${short(f.sha256)}`);
          const l = v.lineage;
          if (l.run) console.log(`run ${l.run.id} (${l.run.status ?? '?'}) ${l.run.dir}`);
          if (l.datasetVersion) console.log(`dataset ${l.datasetVersion}`);
          if (l.base) console.log(`base ${l.base.name} ${l.base.dir} sha256 ${short(l.base.hash)}`);
          for (const [k, m] of Object.entries(l.metrics)) console.log(`  ${k} = ${typeof m === 'number' ? +m.toFixed(6) : String(m)}`);
          for (const t of v.tests) console.log(`test ${t.at} ${t.suite}: ${t.passed ? 'passed' : `FAILED ${t.failed}/${t.total}`} ${t.file}`);
        });
        return 0;
      }
      case 'register': {
        const r = await reg.register({
          source: need(a, 'SOURCE'),
          run: one('--run'),
          base: one('--base'),
          datasetVersion: one('--dataset'),
          notes: one('--notes') ?? '',
          tags: opts.get('--tag') ?? [],
          link: flags.has('--hardlink') ? 'hardlink' : 'copy',
        });
        out(r, () => console.log(`${r.existing ? 'already registered as' : 'registered'} ${versionLine(r.version, [], [])}`));
        return 0;
      }
      case 'tag': {
        const r = await reg.tag(need(a, 'VERSION'), need(b, 'NAME'));
        out(r, () => console.log(`#${r.tag} -> ${r.version}${r.movedFrom ? ` (was ${r.movedFrom})` : ''}`));
        return 0;
      }
      case 'untag': {
        const tag = need(a, 'NAME');
        await reg.untag(tag);
        out({ tag }, () => console.log(`#${tag} removed`));
        return 0;
      }
      case 'events': {
        const ev = reg.events();
        out(ev, () => {
          for (const e of ev) {
            const { at, type, ...rest } = e;
            console.log(`${at}  ${type.padEnd(11)} ${Object.entries(rest).filter(([, v]) => v !== null && typeof v !== 'object').map(([k, v]) => `${k}=${String(v)}`).join(' ')}`);
          }
        });
        return 0;
      }
      case 'promote': {
        const version = need(a, 'VERSION');
        const channel = need(b, 'CHANNEL');
        const suite = one('--suite');
        if (suite) {
          if (flags.has('--force')) throw new UsageError('--force and --suite together make no sense: --force skips the test');
          const engine = new ServingEngine(reg);
          try {
            const r = await promoteWithTests(engine, { version, channel, suite: resolve(suite), reason: one('--reason') });
            out(r, () => {
              printSuite(r.result);
              console.log(r.promoted ? `${r.result.version} promoted to ${channel} (was ${r.entry!.previous ?? 'empty'})` : `refused: ${r.failures!.split('\n')[0]}`);
            });
            return r.promoted ? 0 : 1;
          } finally {
            await engine.close();
          }
        }
        const e = await reg.promote({ version, channel, reason: one('--reason'), force: flags.has('--force') });
        out(e, () => console.log(`${e.version} promoted to ${channel} (was ${e.previous ?? 'empty'})`));
        return 0;
      }
      case 'rollback': {
        const e = await reg.rollback(need(a, 'CHANNEL'), one('--reason'));
        out(e, () => console.log(`${a} rolled back to ${e.version} (from ${e.previous})`));
        return 0;
      }
      case 'history': {
        const h = reg.history(need(a, 'CHANNEL'));
        out(h, () => {
          for (const e of h) console.log(`${e.at}  ${e.action.padEnd(8)} ${e.previous ?? '-'} -> ${e.version ?? '-'}${e.reason ? `  (${e.reason})` : ''}`);
        });
        return 0;
      }
      case 'test': {
        const version = need(a, 'VERSION');
        const suite = need(one('--suite'), '--suite FILE');
        const engine = new ServingEngine(reg);
        try {
          const r = await testVersion(engine, version, resolve(suite));
          out(r, () => printSuite(r));
          return r.passed ? 0 : 1;
        } finally {
          await engine.close();
        }
      }
      case 'verify': {
        const r = await reg.verify(need(a, 'VERSION'));
        out(r, () => console.log(r.ok ? `${r.version}: every file matches its hash` : `${r.version}: ${r.problems.join('; ')}`));
        return r.ok ? 0 : 1;
      }
      default:
        throw new UsageError(`unknown command '${cmd}'`);
    }
  } catch (e) {
    if (e instanceof UsageError) {
      console.error(`starweave-ft registry: ${e.message}\n\n${REGISTRY_USAGE}`);
      return 2;
    }
    const message = e instanceof Error ? e.message : String(e);
    if (json) console.log(JSON.stringify({ error: message, code: (e as { code?: string }).code ?? null }));
    else console.error(`starweave-ft registry ${cmd}: ${message}`);
    return 1;
  }
}
