// Human review sheets: blind A/B order from a seed, JSONL and CSV that round-trip (quotes, commas,
// newlines), verdicts unblinded with the key, win rate with a Wilson 95% interval, errors with file:line.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { exportReviewSheet, parseCsv, scoreReview, wilson95, type ReviewKey } from '../../src/eval/review.js';
import type { Sample } from '../../src/eval/evaluate.js';

const sample = (index: number, output: string, category = 'code_understanding'): Sample => ({
  index, category, prompt: `user: question ${index}, with "quotes", commas\nand a newline`, reference: 'r', output, exactMatch: false, rougeL: 0,
});

describe('human review', () => {
  const dir = mkdtempSync(join(tmpdir(), 'sw-review-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  const base = Array.from({ length: 20 }, (_, i) => sample(i, `base answer ${i}`));
  const tuned = Array.from({ length: 20 }, (_, i) => sample(i, `tuned answer ${i}, "better"`));

  test('the sheet is blind: both orders occur, the key says where the tuned answer is', () => {
    exportReviewSheet(base, tuned, dir, 7);
    const key = JSON.parse(readFileSync(join(dir, 'review-key.json'), 'utf8')) as ReviewKey;
    const sides = Object.values(key.tuned);
    expect(sides.filter((s) => s === 'a').length).toBeGreaterThan(2);
    expect(sides.filter((s) => s === 'b').length).toBeGreaterThan(2);
    const items = readFileSync(join(dir, 'review.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    for (const it of items) {
      const tunedAnswer = key.tuned[String(it.item)] === 'a' ? it.answer_a : it.answer_b;
      expect(tunedAnswer).toMatch(/^tuned/);
    }
    // CSV round trip, quotes/commas/newlines included
    const rows = parseCsv(readFileSync(join(dir, 'review.csv'), 'utf8'));
    expect(rows[0]).toEqual(['item', 'category', 'prompt', 'answer_a', 'answer_b', 'verdict']);
    expect(rows[1][2]).toBe(items[0].prompt);
    expect(rows[1][3]).toBe(items[0].answer_a);
  });

  test('verdicts from the CSV give the win rate and its Wilson interval', () => {
    const key = JSON.parse(readFileSync(join(dir, 'review-key.json'), 'utf8')) as ReviewKey;
    const rows = parseCsv(readFileSync(join(dir, 'review.csv'), 'utf8'));
    // tuned wins items 1-12, base wins 13-16, ties 17-18, 19-20 left blank
    const filled = rows.map((r, k) => {
      if (k === 0) return r;
      const item = Number(r[0]);
      const t = key.tuned[String(item)];
      const v = item <= 12 ? t : item <= 16 ? (t === 'a' ? 'b' : 'a') : item <= 18 ? 'tie' : '';
      return [...r.slice(0, 5), v];
    });
    const file = join(dir, 'verdicts.csv');
    writeFileSync(file, filled.map((r) => r.map((c) => (/[",\n]/.test(c) ? `"${c.replace(/"/g, '""')}"` : c)).join(',')).join('\n'));
    const res = scoreReview(file, join(dir, 'review-key.json'), join(dir, 'review.jsonl'));
    expect(res).toMatchObject({ items: 20, judged: 18, tunedWins: 12, baseWins: 4, ties: 2 });
    expect(res.winRate).toBeCloseTo(0.75, 12);
    const [lo, hi] = res.ci95!;
    expect(lo).toBeCloseTo(0.5050, 3); // Wilson 95% for 12/16
    expect(hi).toBeCloseTo(0.8982, 3);
  });

  test('Wilson interval matches known values', () => {
    const [lo, hi] = wilson95(8, 10)!;
    expect(lo).toBeCloseTo(0.4902, 4);
    expect(hi).toBeCloseTo(0.9433, 4);
    expect(wilson95(0, 0)).toBeNull();
  });

  test('a bad verdict names the file and line', () => {
    const file = join(dir, 'bad.jsonl');
    writeFileSync(file, '{"item": 1, "verdict": "a"}\n{"item": 2, "verdict": "maybe"}\n');
    expect(() => scoreReview(file, join(dir, 'review-key.json'))).toThrow(/bad\.jsonl:2: verdict must be a, b, tie or empty, got 'maybe'/);
  });
});
