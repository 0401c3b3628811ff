// A self-contained HTML report of a run (no external assets, no scripts): the loss and learning-rate
// curves and held-out metrics over steps as inline SVG, the end-of-run evaluation (base vs tuned, per
// category, the gate) and sample generations. Also a comparison page of several runs.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { writeFileAtomicSync } from '../model/atomic.js';
import { readMetrics, summarizeRun } from '../train/runs.js';
import type { RunSummary } from '../train/runs.js';
import { readEvalReport } from './run-eval.js';
import type { EvalReport } from './run-eval.js';
import type { CategoryMetrics } from './evaluate.js';
import type { PerfReport } from './perf.js';
import { readRemediation } from './remediation.js';
import type { RemediationPlan } from './remediation.js';

export function escapeHtml(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;').replace(/'/g, '&#39;');
}

export interface Series {
  name: string;
  points: [number, number][];
  color?: string;
}

const COLORS = ['#1f77b4', '#d62728', '#2ca02c', '#ff7f0e', '#9467bd', '#8c564b', '#e377c2', '#17becf'];

function niceNum(v: number): string {
  if (v === 0) return '0';
  const a = Math.abs(v);
  return a >= 1000 || a < 0.01 ? v.toExponential(1) : v.toPrecision(3).replace(/\.?0+$/, '');
}

/** A line chart as inline SVG: one path per series (class "series", data-points = point count), axes, ticks, legend. */
export function lineChartSvg(title: string, series: readonly Series[], opts: { width?: number; height?: number; xLabel?: string } = {}): string {
  const W = opts.width ?? 560;
  const H = opts.height ?? 260;
  const m = { l: 56, r: 12, t: 26, b: 36 };
  const pts = series.flatMap((s) => s.points).filter(([x, y]) => Number.isFinite(x) && Number.isFinite(y));
  const head = `<svg xmlns="http://www.w3.org/2000/svg" class="chart" role="img" aria-label="${escapeHtml(title)}" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}">` +
    `<text x="${W / 2}" y="16" text-anchor="middle" font-size="13" font-weight="bold">${escapeHtml(title)}</text>`;
  if (!pts.length) return `${head}<text class="no-data" x="${W / 2}" y="${H / 2}" text-anchor="middle" font-size="12" fill="#888">no data</text></svg>`;
  let x0 = Math.min(...pts.map((p) => p[0]));
  let x1 = Math.max(...pts.map((p) => p[0]));
  let y0 = Math.min(...pts.map((p) => p[1]));
  let y1 = Math.max(...pts.map((p) => p[1]));
  if (x1 === x0) {
    x0 -= 1;
    x1 += 1;
  }
  if (y1 === y0) {
    const d = Math.abs(y0) * 0.1 || 1;
    y0 -= d;
    y1 += d;
  } else {
    const pad = (y1 - y0) * 0.05;
    // non-negative data keeps a non-negative axis
    y0 = y0 >= 0 ? Math.max(0, y0 - pad) : y0 - pad;
    y1 += pad;
  }
  const sx = (x: number) => m.l + ((x - x0) / (x1 - x0)) * (W - m.l - m.r);
  const sy = (y: number) => H - m.b - ((y - y0) / (y1 - y0)) * (H - m.t - m.b);
  let out = head;
  out += `<rect x="${m.l}" y="${m.t}" width="${W - m.l - m.r}" height="${H - m.t - m.b}" fill="none" stroke="#ccc"/>`;
  for (let i = 0; i <= 4; i++) {
    const y = y0 + ((y1 - y0) * i) / 4;
    const x = x0 + ((x1 - x0) * i) / 4;
    out += `<line x1="${m.l}" x2="${W - m.r}" y1="${sy(y).toFixed(1)}" y2="${sy(y).toFixed(1)}" stroke="#eee"/>`;
    out += `<text x="${m.l - 4}" y="${(sy(y) + 4).toFixed(1)}" text-anchor="end" font-size="10">${niceNum(y)}</text>`;
    out += `<text x="${sx(x).toFixed(1)}" y="${H - m.b + 14}" text-anchor="middle" font-size="10">${niceNum(x)}</text>`;
  }
  out += `<text x="${W / 2}" y="${H - 4}" text-anchor="middle" font-size="11">${escapeHtml(opts.xLabel ?? 'step')}</text>`;
  series.forEach((s, k) => {
    const color = s.color ?? COLORS[k % COLORS.length];
    const p = s.points.filter(([x, y]) => Number.isFinite(x) && Number.isFinite(y));
    if (p.length) {
      const d = p.map(([x, y], i) => `${i ? 'L' : 'M'}${sx(x).toFixed(1)},${sy(y).toFixed(1)}`).join(' ');
      out += `<path class="series" data-series="${escapeHtml(s.name)}" data-points="${p.length}" d="${d}" fill="none" stroke="${color}" stroke-width="1.6"/>`;
      if (p.length <= 40) for (const [x, y] of p) out += `<circle cx="${sx(x).toFixed(1)}" cy="${sy(y).toFixed(1)}" r="2.2" fill="${color}"/>`;
    }
    out += `<rect x="${m.l + 8 + k * 130}" y="${m.t + 6}" width="10" height="10" fill="${color}"/><text x="${m.l + 22 + k * 130}" y="${m.t + 15}" font-size="11">${escapeHtml(s.name)}</text>`;
  });
  return out + '</svg>';
}

const num = (v: unknown): number => (typeof v === 'number' ? v : NaN);
const fmt = (v: number | null | undefined, d = 4) => (v === null || v === undefined || !Number.isFinite(v) ? '—' : v.toFixed(d));
const pct = (v: number | null | undefined) => (v === null || v === undefined || !Number.isFinite(v) ? '—' : `${(v * 100).toFixed(1)}%`);
const signed = (v: number | null | undefined, p = false) =>
  v === null || v === undefined || !Number.isFinite(v) ? '—' : `${v >= 0 ? '+' : ''}${p ? (v * 100).toFixed(1) + ' pt' : v.toFixed(4)}`;

const STYLE = `body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px;color:#222;max-width:1200px}
h1{font-size:22px}h2{font-size:17px;margin-top:28px;border-bottom:1px solid #ddd;padding-bottom:4px}
table{border-collapse:collapse;margin:8px 0}td,th{border:1px solid #ddd;padding:4px 8px;font-size:13px;text-align:left;vertical-align:top}
th{background:#f5f5f5}.charts{display:flex;flex-wrap:wrap;gap:12px}.pass{color:#1a7f37;font-weight:bold}.fail{color:#cf222e;font-weight:bold}
pre{white-space:pre-wrap;margin:0;font-size:12px;max-width:420px}.muted{color:#777}`;

function page(title: string, body: string): string {
  return `<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1"><title>${escapeHtml(title)}</title><style>${STYLE}</style></head><body>${body}</body></html>\n`;
}

function readJson(file: string): Record<string, unknown> | null {
  if (!existsSync(file)) return null;
  try {
    return JSON.parse(readFileSync(file, 'utf8')) as Record<string, unknown>;
  } catch {
    return null;
  }
}

function metricsTable(ev: EvalReport): string {
  const rows: [string, (m: CategoryMetrics & { perplexity?: number | null }) => string, number | null | undefined, boolean][] = [
    ['held-out loss', (m) => fmt(m.loss), ev.delta?.loss, false],
    ['token accuracy', (m) => pct(m.tokenAccuracy), ev.delta?.tokenAccuracy, true],
    ['exact match', (m) => pct(m.exactMatch), ev.delta?.exactMatch, true],
    ['ROUGE-L F1', (m) => fmt(m.rougeL), ev.delta?.rougeL, false],
  ];
  let h = `<table class="base-vs-tuned"><tr><th>metric</th><th>base</th><th>tuned</th><th>Δ (tuned − base)</th></tr>`;
  for (const [name, get, d, p] of rows) h += `<tr><td>${name}</td><td>${ev.base ? get(ev.base) : '—'}</td><td>${get(ev.tuned)}</td><td>${signed(d, p)}</td></tr>`;
  h += `<tr><td>examples scored / generated</td><td>${ev.base ? `${ev.base.examples} / ${ev.base.generated}` : '—'}</td><td>${ev.tuned.examples} / ${ev.tuned.generated}</td><td></td></tr></table>`;
  return h;
}

function categoryTable(ev: EvalReport): string {
  const cats = Object.keys(ev.tuned.categories);
  if (!cats.length) return '';
  let h = `<table class="categories"><tr><th>category</th><th>examples</th><th>tokens</th><th>token acc. base</th><th>token acc. tuned</th><th>loss base</th><th>loss tuned</th><th>exact match</th><th>ROUGE-L</th></tr>`;
  for (const c of cats) {
    const t = ev.tuned.categories[c];
    const b = ev.base?.categories[c];
    h += `<tr><td>${escapeHtml(c)}</td><td>${t.examples}</td><td>${t.tokens}</td><td>${pct(b?.tokenAccuracy)}</td><td>${pct(t.tokenAccuracy)}</td><td>${fmt(b?.loss)}</td><td>${fmt(t.loss)}</td><td>${pct(t.exactMatch)}</td><td>${fmt(t.rougeL)}</td></tr>`;
  }
  return h + '</table>';
}

function gateHtml(ev: EvalReport): string {
  const g = ev.gate;
  let h = `<p>gate: <span class="${g.passed ? 'pass' : 'fail'}" id="gate">${g.passed ? 'PASS' : 'FAIL'}</span>${g.checks.length ? '' : ' <span class="muted">(no thresholds configured)</span>'}</p>`;
  if (g.checks.length) {
    h += '<table class="gate"><tr><th>check</th><th>value</th><th>threshold</th><th>result</th></tr>';
    for (const c of g.checks)
      h += `<tr><td>${escapeHtml(c.name)}</td><td>${fmt(c.value)}</td><td>${c.op} ${c.threshold}</td><td class="${c.passed ? 'pass' : 'fail'}">${c.passed ? 'pass' : 'fail'}</td></tr>`;
    h += '</table>';
  }
  return h;
}

function samplesHtml(ev: EvalReport): string {
  if (!ev.tuned.samples.length) return '<p class="muted">no generations</p>';
  const base = new Map((ev.base?.samples ?? []).map((s) => [s.index, s]));
  let h = `<table class="samples"><tr><th>#</th><th>category</th><th>prompt</th><th>reference</th><th>base output</th><th>tuned output</th><th>EM</th><th>ROUGE-L</th></tr>`;
  for (const s of ev.tuned.samples) {
    const b = base.get(s.index);
    h += `<tr><td>${s.index}</td><td>${escapeHtml(s.category)}</td><td><pre>${escapeHtml(s.prompt)}</pre></td><td><pre>${escapeHtml(s.reference)}</pre></td><td><pre>${b ? escapeHtml(b.output) : '—'}</pre></td><td><pre>${escapeHtml(s.output)}</pre></td><td>${s.exactMatch ? '✓' : '✗'}</td><td>${s.rougeL.toFixed(3)}</td></tr>`;
  }
  return h + '</table>';
}

/** The report of one run directory as an HTML string. */
export function renderRunReport(runDir: string): string {
  const s = summarizeRun(runDir);
  const run = readJson(join(runDir, 'run.json'));
  const config = readJson(join(runDir, 'config.json'));
  const metrics = readMetrics(runDir);
  const train = metrics.filter((r) => r.type === 'train');
  const evals = metrics.filter((r) => r.type === 'eval');
  const ev = readEvalReport(runDir);
  const charts = [
    lineChartSvg('training loss', [
      { name: 'train loss', points: train.map((r) => [r.step, num(r.loss)]) },
      { name: 'held-out loss', points: evals.map((r) => [r.step, num(r.eval_loss)]) },
    ]),
    lineChartSvg('learning rate', [{ name: 'lr', points: train.map((r) => [r.step, num(r.lr)]) }]),
    lineChartSvg('gradient norm', [{ name: 'grad norm', points: train.map((r) => [r.step, num(r.grad_norm)]) }]),
    lineChartSvg('held-out perplexity', [{ name: 'perplexity', points: evals.map((r) => [r.step, num(r.eval_perplexity)]) }]),
    ...(evals.some((r) => typeof r.eval_token_accuracy === 'number')
      ? [lineChartSvg('held-out token accuracy', [{ name: 'token accuracy', points: evals.map((r): [number, number] => [r.step, num(r.eval_token_accuracy)]) }])]
      : []),
  ];
  const model = (config?.model as { dir?: string } | undefined)?.dir ?? '—';
  const training = (config?.training ?? {}) as Record<string, unknown>;
  const lora = (config?.lora ?? {}) as Record<string, unknown>;
  let body = `<h1>Run ${escapeHtml(s.name)} <span class="muted">${escapeHtml(runDir.split('/').pop() ?? '')}</span></h1>`;
  body += `<table class="summary"><tr><th>status</th><td id="status">${escapeHtml(s.status)}</td></tr><tr><th>steps</th><td>${s.steps ?? '—'} / ${s.totalSteps ?? '—'}</td></tr>`;
  body += `<tr><th>model</th><td>${escapeHtml(String(model))}</td></tr><tr><th>dataset</th><td>${escapeHtml(s.datasetVersion ?? String((run?.dataset as { kind?: string } | undefined)?.kind ?? '—'))}</td></tr>`;
  body += `<tr><th>LoRA</th><td>r ${escapeHtml(String(lora.r ?? '—'))}, alpha ${escapeHtml(String(lora.lora_alpha ?? '—'))}, targets ${escapeHtml(JSON.stringify(lora.target_modules ?? '—'))}</td></tr>`;
  body += `<tr><th>training</th><td>lr ${escapeHtml(String(training.lr ?? '—'))} (${escapeHtml(String(training.schedule ?? '—'))}), micro-batch ${escapeHtml(String(training.micro_batch ?? '—'))} × accum ${escapeHtml(String(training.grad_accum ?? '—'))}, seed ${escapeHtml(String(training.seed ?? '—'))}</td></tr>`;
  body += `<tr><th>last train loss</th><td>${fmt(s.lastLoss)}</td></tr><tr><th>held-out loss (last / best)</th><td>${fmt(s.lastEvalLoss)} / ${fmt(s.bestEvalLoss)}</td></tr>`;
  body += `<tr><th>updated</th><td>${escapeHtml(s.updatedAt ?? '—')}</td></tr></table>`;
  body += `<h2>Curves</h2><div class="charts">${charts.join('')}</div>`;
  body += '<h2>Held-out evaluations</h2>';
  if (evals.length) {
    body += '<table class="evals"><tr><th>step</th><th>loss</th><th>perplexity</th><th>token accuracy</th><th>tokens</th></tr>';
    for (const r of evals) body += `<tr><td>${r.step}</td><td>${fmt(num(r.eval_loss))}</td><td>${fmt(num(r.eval_perplexity), 2)}</td><td>${pct(typeof r.eval_token_accuracy === 'number' ? r.eval_token_accuracy : null)}</td><td>${escapeHtml(String(r.eval_tokens ?? '—'))}</td></tr>`;
    body += '</table>';
  } else body += '<p class="muted">no held-out evaluations</p>';
  body += '<h2>Evaluation: base vs tuned</h2>';
  if (ev) {
    body += `<p class="muted">at step ${ev.step ?? '—'}, ${ev.seconds.toFixed(1)} s</p>` + gateHtml(ev) + metricsTable(ev);
    body += '<h2>Per category</h2>' + (categoryTable(ev) || '<p class="muted">no categories</p>');
    body += '<h2>Sample generations</h2>' + samplesHtml(ev);
    if (ev.perf) body += '<h2>Performance</h2>' + perfHtml(ev.perf);
    const plan = ev.gate.passed ? null : readRemediation(runDir);
    if (plan) body += '<h2>Remediation</h2>' + remediationHtml(plan);
  } else body += '<p class="muted">no eval.json (enable eval.metrics in the run config)</p>';
  return page(`Run ${s.name}`, body);
}

function perfHtml(p: PerfReport): string {
  const ms = (v: number) => `${(v * 1000).toFixed(1)} ms`;
  return (
    `<p class="muted">${p.requests.length} requests of ${p.settings.maxNewTokens} new tokens, one at a time (${escapeHtml(p.machine.isa)}, ${p.machine.threads} threads)</p>` +
    '<table class="perf"><tr><th>latency p50</th><th>latency p95</th><th>prefill tokens/s</th><th>decode tokens/s</th></tr>' +
    `<tr><td>${ms(p.latency.p50)}</td><td>${ms(p.latency.p95)}</td><td>${p.prefill.tokensPerSecond.toFixed(1)}</td><td>${p.decode.tokensPerSecond.toFixed(1)}</td></tr></table>`
  );
}

function remediationHtml(p: RemediationPlan): string {
  let h = `<p>The gate failed; the next round (<code>starweave-ft pipeline</code>) trains with this mix. ${p.review.length} item(s) in <code>review-queue.jsonl</code>.</p>`;
  h += '<table class="remediation"><tr><th>category</th><th>failed checks</th><th>token acc. (tuned)</th><th>train records</th><th>weight</th><th>next weight</th></tr>';
  for (const c of p.failingCategories)
    h += `<tr><td>${escapeHtml(c.category)}</td><td>${escapeHtml(c.checks.join(', '))}</td><td>${pct(c.tuned?.tokenAccuracy ?? null)}</td><td>${c.trainRecords}</td><td>${c.weight}</td><td>${c.nextWeight}</td></tr>`;
  h += '</table>';
  if (p.unattributed.length) h += `<ul>${p.unattributed.map((u) => `<li>${escapeHtml(u.check)}: ${escapeHtml(u.hint)}</li>`).join('')}</ul>`;
  return h;
}

/** Writes renderRunReport(runDir) to outFile (default runDir/report.html); returns the path. */
export function writeRunReport(runDir: string, outFile = join(runDir, 'report.html')): string {
  writeFileAtomicSync(outFile, renderRunReport(runDir));
  return outFile;
}

export interface RunComparisonRow {
  dir: string;
  summary: RunSummary;
  config: Record<string, unknown> | null;
  eval: EvalReport | null;
}

/** The rows of a comparison of run directories (summary, config, eval.json). */
export function compareRuns(dirs: readonly string[]): RunComparisonRow[] {
  return dirs.map((dir) => ({ dir, summary: summarizeRun(dir), config: readJson(join(dir, 'config.json')), eval: readEvalReport(dir) }));
}

/** A comparison page of several runs: a table and overlaid loss / held-out loss curves. */
export function renderComparison(dirs: readonly string[]): string {
  const rows = compareRuns(dirs);
  let body = `<h1>Comparing ${rows.length} runs</h1><table class="compare"><tr><th>run</th><th>status</th><th>steps</th><th>lr</th><th>LoRA r</th><th>last train loss</th><th>best held-out loss</th><th>token acc. (tuned)</th><th>Δ token acc.</th><th>ROUGE-L</th><th>gate</th></tr>`;
  for (const r of rows) {
    const t = (r.config?.training ?? {}) as Record<string, unknown>;
    const l = (r.config?.lora ?? {}) as Record<string, unknown>;
    body += `<tr><td>${escapeHtml(r.dir.split('/').pop() ?? r.dir)}</td><td>${escapeHtml(r.summary.status)}</td><td>${r.summary.steps ?? '—'}</td><td>${escapeHtml(String(t.lr ?? '—'))}</td><td>${escapeHtml(String(l.r ?? '—'))}</td>`;
    body += `<td>${fmt(r.summary.lastLoss)}</td><td>${fmt(r.summary.bestEvalLoss)}</td><td>${pct(r.eval?.tuned.tokenAccuracy)}</td><td>${signed(r.eval?.delta?.tokenAccuracy, true)}</td><td>${fmt(r.eval?.tuned.rougeL)}</td>`;
    body += `<td>${r.eval ? `<span class="${r.eval.gate.passed ? 'pass' : 'fail'}">${r.eval.gate.passed ? 'PASS' : 'FAIL'}</span>` : '—'}</td></tr>`;
  }
  body += '</table>';
  const name = (d: string) => d.split('/').pop() ?? d;
  body += `<div class="charts">${lineChartSvg(
    'training loss',
    dirs.map((d) => ({ name: name(d), points: readMetrics(d).filter((r) => r.type === 'train').map((r): [number, number] => [r.step, num(r.loss)]) })),
  )}${lineChartSvg(
    'held-out loss',
    dirs.map((d) => ({ name: name(d), points: readMetrics(d).filter((r) => r.type === 'eval').map((r): [number, number] => [r.step, num(r.eval_loss)]) })),
  )}</div>`;
  return page('Run comparison', body);
}
