// `starweave-ft data ...`: build, validate, list, show, diff, curate, generate. Thin: every command
// calls the library (src/data/).
import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import {
  buildDataset,
  DataError,
  diffVersions,
  formatWhere,
  generateExamples,
  listVersions,
  loadConfigFile,
  loadCuration,
  processSources,
  readManifest,
  recordDecision,
  resolveVersion,
  StrictModeError,
  approximateRenderer,
  versionDir,
  type BuildProgress,
  type BuildReport,
  type DatasetRecord,
  type Reject,
} from '../data/index.js';
import { emptyReport } from '../data/report.js';

export const DATA_USAGE = `starweave-ft data <command>

commands:
  build    --config FILE [--store DIR] [--strict] [--rejects FILE] [--tokenizer MODEL_DIR] [--json]
           build a dataset version from the config's sources into the store
  validate --config FILE [--rejects FILE] [--tokenizer MODEL_DIR] [--json]
           run every stage without writing a version; exit 1 when records are rejected
  list     [--store DIR] [--json]                 the versions in the store
  show     VERSION [--store DIR] [--json]         a version's manifest summary and report
  diff     A B [--store DIR] [--json]             records added, removed and moved between two versions
  curate   --config FILE                          records of review sources awaiting a decision
  curate   --config FILE approve HASH [--by NAME]
  curate   --config FILE reject HASH --reason TEXT [--by NAME]
  curate   --config FILE correct HASH --record FILE.json [--by NAME]
  generate [--seed N] [--per-category N]          seeded STARWEAVE-format conversations as JSONL on stdout

VERSION: a version id, a unique prefix of one, a dataset name (its latest version) or NAME~N.
The store is --store, else $STARWEAVE_DATA_STORE, else .starweave/datasets in the current folder.`;

interface Parsed {
  positional: string[];
  flags: Map<string, string | true>;
}

const BOOLEAN_FLAGS = new Set(['--json', '--strict', '--quiet']);

function parseArgs(args: string[]): Parsed {
  const positional: string[] = [];
  const flags = new Map<string, string | true>();
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    if (a.startsWith('--')) {
      const eq = a.indexOf('=');
      if (eq > 0) flags.set(a.slice(0, eq), a.slice(eq + 1));
      else if (BOOLEAN_FLAGS.has(a)) flags.set(a, true);
      else {
        const v = args[i + 1];
        if (v === undefined || v.startsWith('--')) throw new DataError(`${a} needs a value`);
        flags.set(a, v);
        i++;
      }
    } else positional.push(a);
  }
  return { positional, flags };
}

const str = (p: Parsed, name: string): string | undefined => {
  const v = p.flags.get(name);
  return typeof v === 'string' ? v : undefined;
};
const need = (p: Parsed, name: string): string => {
  const v = str(p, name);
  if (!v) throw new DataError(`${name} is required`);
  return v;
};
const storeOf = (p: Parsed) => resolve(str(p, '--store') ?? process.env.STARWEAVE_DATA_STORE ?? join('.starweave', 'datasets'));

/** A one-line progress bar on stderr when it is a terminal; silent otherwise. */
function progressBar(enabled: boolean): { update: (p: BuildProgress) => void; done: () => void } {
  if (!enabled || !process.stderr.isTTY) return { update: () => {}, done: () => {} };
  const t0 = Date.now();
  let last = 0;
  const frames = ['⠋', '⠙', '⠹', '⠸', '⠼', '⠴', '⠦', '⠧', '⠇', '⠏'];
  let f = 0;
  return {
    update: (p) => {
      const now = Date.now();
      if (now - last < 100 && p.stage === 'read') return;
      last = now;
      const rate = p.records / Math.max((now - t0) / 1000, 1e-3);
      const what = p.stage === 'read' ? `reading ${p.source ?? ''}` : p.stage;
      process.stderr.write(`\r${frames[f++ % frames.length]} ${what.padEnd(40).slice(0, 40)} ${String(p.records).padStart(9)} records  ${Math.round(rate).toString().padStart(7)}/s`);
    },
    done: () => process.stderr.write('\r\x1b[K'),
  };
}

function printSummary(r: BuildReport, log: (s: string) => void): void {
  log(`${r.read} records read, ${r.kept} kept: ${r.bySplit.train} train, ${r.bySplit.heldout} held out`);
  for (const [c, v] of Object.entries(r.byCategory)) log(`  ${c.padEnd(20)} ${String(v.train).padStart(7)} train ${String(v.heldout).padStart(6)} held out`);
  const rejects = Object.entries(r.rejects).filter(([, v]) => v > 0);
  log(`rejected: ${rejects.length ? rejects.map(([k, v]) => `${k} ${v}`).join(', ') : 'none'}`);
  const scrubbed = Object.entries(r.scrubbed).filter(([, v]) => v > 0);
  if (scrubbed.length) log(`scrubbed: ${scrubbed.map(([k, v]) => `${k} ${v}`).join(', ')}`);
  if (r.curation.pending) log(`awaiting curation: ${r.curation.pending} (see \`starweave-ft data curate\`)`);
  log(`tokens: ${r.tokens.total} (${r.tokens.counter}${r.tokens.exact ? '' : ', approximate'}), longest ${r.tokens.max}`);
}

function printRejects(rejects: Reject[], log: (s: string) => void, max = 10): void {
  for (const r of rejects.filter((x) => x.reason !== 'exact_duplicate' && x.reason !== 'near_duplicate').slice(0, max)) {
    log(`  ${formatWhere({ file: r.origin.file, line: r.origin.line, path: r.path })}: ${r.reason}: ${r.message}`);
  }
}

export async function runDataCommand(args: string[]): Promise<number> {
  const [cmd, ...rest] = args;
  const out = (s: string) => console.log(s);
  const err = (s: string) => console.error(s);
  try {
    const p = parseArgs(rest);
    const json = p.flags.has('--json');
    switch (cmd) {
      case 'build':
      case 'validate': {
        const { config, baseDir } = loadConfigFile(need(p, '--config'));
        if (p.flags.has('--strict')) config.strict = true;
        const tokenizerDir = str(p, '--tokenizer') ?? (config.tokens.tokenizer && resolve(baseDir, config.tokens.tokenizer));
        const renderer = tokenizerDir ? (await import('../model/tokenizer.js')).loadTokenizer(resolve(tokenizerDir)) : undefined;
        const bar = progressBar(!json);
        const rejectsFile = str(p, '--rejects');
        let res;
        try {
          res = await buildDataset({ config, baseDir, renderer, store: cmd === 'build' ? storeOf(p) : undefined, dryRun: cmd === 'validate', rejectsFile: rejectsFile && resolve(rejectsFile), onProgress: bar.update });
        } finally {
          bar.done();
        }
        const r = res.report.rejects;
        const inputRejects = r.parse_error + r.unknown_format + r.schema + r.too_short + r.too_long + r.too_many_tokens > 0;
        if (json) out(JSON.stringify({ versionId: res.versionId, created: res.created, dir: res.dir, report: res.report }));
        else {
          printSummary(res.report, out);
          if (inputRejects) {
            out('first rejects:');
            printRejects(res.firstRejects, out);
          }
          if (cmd === 'build') out(`${res.created ? 'version' : 'unchanged: version'} ${res.versionId} in ${res.dir} (report.md, rejects.jsonl beside it)`);
        }
        return cmd === 'validate' && inputRejects ? 1 : 0;
      }
      case 'list': {
        const vs = listVersions(storeOf(p));
        if (json) out(JSON.stringify(vs.map((m) => ({ versionId: m.versionId, name: m.name, createdAt: m.createdAt, records: m.records, parent: m.parent }))));
        else if (!vs.length) out(`no versions in ${storeOf(p)}`);
        else {
          out(`${'version'.padEnd(16)}  ${'name'.padEnd(20)}  ${'created'.padEnd(24)}  ${'records'.padStart(8)}  ${'train'.padStart(8)}  ${'heldout'.padStart(8)}  parent`);
          for (const m of vs) out(`${m.versionId}  ${m.name.padEnd(20)}  ${m.createdAt.padEnd(24)}  ${String(m.records).padStart(8)}  ${String(m.splits.train.records).padStart(8)}  ${String(m.splits.heldout.records).padStart(8)}  ${m.parent ?? '-'}`);
        }
        return 0;
      }
      case 'show': {
        const store = storeOf(p);
        const spec = p.positional[0];
        if (!spec) throw new DataError('show needs a VERSION');
        const id = resolveVersion(store, spec);
        const m = readManifest(store, id);
        if (json) out(JSON.stringify(m));
        else {
          out(`version ${m.versionId} of '${m.name}', created ${m.createdAt}, parent ${m.parent ?? '-'}`);
          out(`set sha256 ${m.setHash}`);
          out(`${m.records} records: train ${m.splits.train.records} (${m.splits.train.tokens} tokens), held out ${m.splits.heldout.records} (${m.splits.heldout.tokens} tokens)`);
          out(`tokenizer ${m.lineage.tokenizer.name}${m.lineage.tokenizer.exact ? '' : ' (approximate)'}; ${m.lineage.project.name} ${m.lineage.project.version}`);
          out('sources:');
          for (const s of m.lineage.sources) out(`  ${s.name} (${s.kind}${s.review ? ', reviewed' : ''}): ${s.inputs.length} input(s)`);
          if (m.lineage.curation) out(`curation: ${m.lineage.curation.file} (${m.lineage.curation.decisions} decisions)`);
          out('');
          out(readFileSync(join(versionDir(store, id), m.files.reportMarkdown), 'utf8'));
        }
        return 0;
      }
      case 'diff': {
        const [a, b] = p.positional;
        if (!a || !b) throw new DataError('diff needs two versions');
        const d = await diffVersions(storeOf(p), a, b);
        if (json) out(JSON.stringify(d));
        else {
          out(`${d.from} -> ${d.to}: +${d.added} added, -${d.removed} removed, ${d.moved} moved between splits, ${d.unchanged} unchanged`);
          for (const [c, v] of Object.entries(d.byCategory)) if (v.added || v.removed) out(`  ${c.padEnd(20)} +${v.added} -${v.removed}`);
          const l = d.lineage;
          if (l.inputsChanged.length) for (const i of l.inputsChanged) out(`  input ${i.change}: ${i.source}: ${i.file}`);
          if (l.configChanged) out('  pipeline config changed');
          if (l.curationChanged) out('  curation decisions changed');
          if (l.tokenizerChanged) out('  tokenizer changed');
        }
        return 0;
      }
      case 'curate': {
        const cfgFile = need(p, '--config');
        const { config, baseDir } = loadConfigFile(cfgFile);
        if (!config.curation.file) throw new DataError('the config names no curation.file', { file: cfgFile, path: 'curation.file' });
        const file = resolve(baseDir, config.curation.file);
        const [action, hash] = p.positional;
        if (!action || action === 'list') {
          const curation = loadCuration(file, config.curation.file);
          const pending: DatasetRecord[] = [];
          await processSources(config, baseDir, {
            renderer: approximateRenderer,
            curation,
            report: emptyReport(config.name, approximateRenderer, config.dedup.threshold),
            reject: () => {},
            pending: (r) => pending.push(r),
            keep: () => {},
            inputs: [],
          });
          if (json) out(JSON.stringify(pending));
          else {
            out(`${pending.length} record(s) awaiting a decision (${config.curation.file}):`);
            for (const r of pending) {
              const q = r.messages.find((m) => m.role === 'user')?.content.replace(/\s+/g, ' ').slice(0, 90) ?? '';
              out(`  ${r.hash}  ${r.category.padEnd(19)} ${r.origin.file}:${r.origin.line}  "${q}"`);
            }
          }
          return 0;
        }
        if (!hash) throw new DataError(`curate ${action} needs a record HASH`);
        const by = str(p, '--by');
        let decision: unknown;
        if (action === 'approve') decision = { hash, decision: 'approve', by };
        else if (action === 'reject') decision = { hash, decision: 'reject', reason: need(p, '--reason'), by };
        else if (action === 'correct') {
          const recFile = need(p, '--record');
          let record: unknown;
          try {
            record = JSON.parse(readFileSync(recFile, 'utf8'));
          } catch (e) {
            throw new DataError(`cannot read the corrected record: ${(e as Error).message}`, { file: recFile });
          }
          decision = { hash, decision: 'correct', record, by };
        } else throw new DataError(`unknown curate action '${action}' (approve, reject, correct, list)`);
        const d = recordDecision(file, decision);
        out(`${d.decision} ${d.hash} recorded in ${config.curation.file}`);
        return 0;
      }
      case 'generate': {
        const seed = Number(str(p, '--seed') ?? 1);
        const per = Number(str(p, '--per-category') ?? 25);
        if (!Number.isInteger(seed) || !Number.isInteger(per) || per < 0) throw new DataError('--seed and --per-category take integers');
        let i = 0;
        const base = Date.UTC(2025, 0, 6, 8, 0, 0);
        for (const ex of generateExamples(seed, per)) {
          i++;
          const at = new Date(base + i * 7_919_000).toISOString();
          out(JSON.stringify({ id: `gen-${seed}-${i}`, node: `starweave@weave-0${(i % 4) + 1}`, category: ex.category, createdAt: at, messages: ex.messages, metadata: { generated: ex.scenarios.join('+') } }));
        }
        return 0;
      }
      case undefined:
      case 'help':
      case '--help':
        out(DATA_USAGE);
        return 0;
      default:
        err(`starweave-ft data: unknown command '${cmd}'\n\n${DATA_USAGE}`);
        return 2;
    }
  } catch (e) {
    if (e instanceof StrictModeError) {
      err(`starweave-ft data: ${e.message}`);
      return 1;
    }
    if (e instanceof DataError) {
      err(`starweave-ft data: ${e.message}`);
      return 1;
    }
    throw e;
  }
}
