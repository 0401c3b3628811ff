// A run with eval.metrics writes eval.json (base vs tuned, categories, gate) and report.html; the report
// (and `runs compare`'s page) open in a real headless chromium with data in the charts and no console errors.
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { startTraining } from '../../src/train/runner.js';
import { readEvalReport } from '../../src/eval/run-eval.js';
import { lineChartSvg, renderComparison } from '../../src/eval/report-html.js';
import { runTrainCommand } from '../../src/cli/train.js';
import { baseConfig, records, tmp } from '../train/fixtures.js';
import { findChromium, inspectPage } from './browser.js';

const chromium = findChromium();
const inCI = !!process.env.CI && process.env.CI !== 'false' && process.env.CI !== '0';
if (!chromium && !inCI) console.warn('test/eval/report.test.ts: chromium not found (apt-get install -y chromium, or set CHROMIUM_PATH): the browser checks are skipped');
const browserTest = chromium || inCI ? test : test.skip;

const CHECKS = `
  const paths = [...document.querySelectorAll('svg.chart path.series')];
  return {
    title: document.title,
    charts: document.querySelectorAll('svg.chart').length,
    series: paths.map((p) => ({ name: p.dataset.series, points: Number(p.dataset.points), segments: (p.getAttribute('d').match(/[ML]/g) || []).length, length: p.getTotalLength() })),
    noData: document.querySelectorAll('svg.chart .no-data').length,
    gate: document.getElementById('gate')?.textContent ?? null,
    baseVsTunedRows: document.querySelectorAll('table.base-vs-tuned tr').length,
    categoryRows: document.querySelectorAll('table.categories tr').length,
    sampleRows: document.querySelectorAll('table.samples tr').length,
    externals: [...document.querySelectorAll('[src],link[href]')].length,
    width: document.body.scrollWidth,
  };`;

function categorized(n: number, offset = 0) {
  return records(n, offset).map((r, i) => ({ ...r, category: i % 2 ? 'otp' : 'phoenix' }));
}

let runDir = '';
let runDir2 = '';

beforeAll(async () => {
  const cfg = (await baseConfig({
    eval: { every_steps: 3, metrics: { generate_examples: 3, max_new_tokens: 8, gate: { min_loss_improvement: 0, max_eval_loss: 1e9 } } },
    lora: { lora_dropout: 0 },
    training: { lr: 1e-2 },
  })) as Record<string, unknown> & { dataset: unknown };
  cfg.dataset = { train: categorized(12), heldout: categorized(4, 100) };
  const r = await startTraining(cfg as never).done;
  runDir = r.runDir;
  expect(r.evaluation).toBeTruthy();
  const cfg2 = (await baseConfig({ eval: { every_steps: 0 }, training: { max_steps: 3 } })) as never;
  runDir2 = (await startTraining(cfg2).done).runDir;
});

describe('evaluation at the end of a run and the HTML report', () => {
  test('eval.json, metrics.jsonl token accuracy, run.json gate, report.html', () => {
    const ev = readEvalReport(runDir)!;
    expect(ev).not.toBeNull();
    expect(ev.step).toBe(6);
    expect(ev.tuned.examples).toBe(4);
    expect(ev.base!.examples).toBe(4);
    expect(Object.keys(ev.tuned.categories).sort()).toEqual(['otp', 'phoenix']);
    expect(ev.tuned.samples).toHaveLength(3);
    expect(ev.base!.samples).toHaveLength(3);
    // training lowered the held-out loss below the base model's
    expect(ev.tuned.loss!).toBeLessThan(ev.base!.loss!);
    expect(ev.gate.passed).toBe(true);
    expect(ev.gate.checks).toHaveLength(2);
    const evals = readFileSync(join(runDir, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l)).filter((r) => r.type === 'eval');
    expect(evals.map((r) => r.step)).toEqual([0, 3, 6]);
    for (const r of evals) expect(r.eval_token_accuracy).toBeGreaterThanOrEqual(0);
    // the last periodic eval and the end-of-run evaluation agree on the loss
    expect(ev.tuned.loss!).toBeCloseTo(evals[2].eval_loss, 3);
    const run = JSON.parse(readFileSync(join(runDir, 'run.json'), 'utf8'));
    expect(run.gate).toEqual({ passed: true, reasons: [] });
    const html = readFileSync(join(runDir, 'report.html'), 'utf8');
    expect(html).toContain('<svg');
    expect(html).not.toMatch(/<script|\bsrc=|\bhref=|url\(/);
    // a run without eval.metrics has neither
    expect(existsSync(join(runDir2, 'eval.json'))).toBe(false);
    expect(existsSync(join(runDir2, 'report.html'))).toBe(false);
  });

  test('charts escape and handle empty / flat series', () => {
    expect(lineChartSvg('<x>', [])).toContain('no data');
    expect(lineChartSvg('<x>', [])).toContain('&lt;x&gt;');
    const flat = lineChartSvg('flat', [{ name: 'a', points: [[1, 2], [2, 2]] }]);
    expect(flat).toMatch(/d="M[\d.]+,[\d.]+ L[\d.]+,[\d.]+"/);
    expect(flat).not.toContain('NaN');
  });

  test('CLI: runs show --html and runs compare (table, --json, --html)', async () => {
    const out = join(tmp('sw-eval-cli-'), 'r.html');
    const logs: string[] = [];
    const orig = console.log;
    console.log = (...a: unknown[]) => logs.push(a.join(' '));
    try {
      expect(await runTrainCommand(['runs', 'show', runDir, '--html', out])).toBe(0);
      expect(logs.join('\n')).toMatch(/gate PASS/);
      expect(readFileSync(out, 'utf8')).toContain('base-vs-tuned');
      logs.length = 0;
      const cmp = join(tmp('sw-eval-cli-'), 'c.html');
      expect(await runTrainCommand(['runs', 'compare', runDir, runDir2, '--html', cmp])).toBe(0);
      expect(logs).toHaveLength(4); // header, 2 rows, the page
      expect(logs[1]).toMatch(/PASS$/);
      expect(logs[2]).toMatch(/—$/);
      expect(existsSync(cmp)).toBe(true);
      logs.length = 0;
      expect(await runTrainCommand(['runs', 'compare', runDir, runDir2, '--json'])).toBe(0);
      expect(logs.map((l) => JSON.parse(l).summary.steps)).toEqual([6, 3]);
    } finally {
      console.log = orig;
    }
  });

  browserTest('report.html renders in headless chromium: charts with points, tables, no console errors', async () => {
    if (!chromium) throw new Error('CI=true but chromium is not installed (apt-get install -y chromium, or set CHROMIUM_PATH)');
    const r = await inspectPage(chromium, pathToFileURL(join(runDir, 'report.html')).href, CHECKS, { screenshot: true });
    expect(r.errors).toEqual([]);
    const v = r.value as { title: string; charts: number; series: { name: string; points: number; segments: number; length: number }[]; noData: number; gate: string; baseVsTunedRows: number; categoryRows: number; sampleRows: number; externals: number };
    expect(v.title).toBe('Run test');
    expect(v.charts).toBe(5);
    expect(v.noData).toBe(0);
    const byName = Object.fromEntries(v.series.map((s) => [s.name, s]));
    expect(byName['train loss'].points).toBe(6);
    expect(byName['lr'].points).toBe(6);
    expect(byName['held-out loss'].points).toBe(3);
    expect(byName['token accuracy'].points).toBe(3);
    for (const s of v.series) {
      expect(s.segments).toBe(s.points);
      expect(s.length).toBeGreaterThan(10);
    }
    expect(v.gate).toBe('PASS');
    expect(v.baseVsTunedRows).toBe(6);
    expect(v.categoryRows).toBe(3);
    expect(v.sampleRows).toBe(4);
    expect(v.externals).toBe(0);
    expect(r.screenshotPng!.subarray(1, 4).toString()).toBe('PNG');

    // the comparison page too
    const cmp = join(tmp('sw-eval-cmp-'), 'compare.html');
    writeFileSync(cmp, renderComparison([runDir, runDir2]));
    const c = await inspectPage(chromium, pathToFileURL(cmp).href, CHECKS);
    expect(c.errors).toEqual([]);
    const cv = c.value as { charts: number; series: { points: number }[] };
    expect(cv.charts).toBe(2);
    expect(cv.series.map((s) => s.points)).toEqual([6, 3, 3, 2]);
  });

  browserTest('the browser check does see console errors and failed loads', async () => {
    if (!chromium) throw new Error('CI=true but chromium is not installed');
    const bad = join(tmp('sw-eval-bad-'), 'bad.html');
    writeFileSync(bad, '<!DOCTYPE html><html><body><img src="missing.png"><script>console.error("boom"); null.x;</script></body></html>');
    const r = await inspectPage(chromium, pathToFileURL(bad).href, 'return 1;');
    expect(r.errors.some((e) => e.includes('boom'))).toBe(true);
    expect(r.errors.some((e) => e.startsWith('exception'))).toBe(true);
    expect(r.errors.some((e) => e.includes('missing.png') || e.includes('ERR_FILE_NOT_FOUND'))).toBe(true);
  });
});
