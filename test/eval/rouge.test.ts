// ROUGE-L and exact match against hand-computed values.
import { exactMatch, lcsLength, rougeL, rougeLTokens, wordTokens } from '../../src/eval/rouge.js';

describe('ROUGE-L', () => {
  test('LCS lengths', () => {
    expect(lcsLength([], ['a'])).toBe(0);
    expect(lcsLength(['a', 'b', 'c'], ['a', 'b', 'c'])).toBe(3);
    // ABCBDAB vs BDCABA: 4 (BCBA)
    expect(lcsLength([...'ABCBDAB'], [...'BDCABA'])).toBe(4);
    expect(lcsLength([...'abc'], [...'xyz'])).toBe(0);
  });

  test("Lin (2004)'s examples", () => {
    const ref = 'police killed the gunman';
    // S2 "police kill the gunman": LCS "police the gunman" = 3 of 4 both ways -> 0.75
    expect(rougeL('police kill the gunman', ref).f1).toBeCloseTo(0.75, 12);
    // S3 "the gunman kill police": LCS "the gunman" = 2 -> 0.5
    expect(rougeL('the gunman kill police', ref).f1).toBeCloseTo(0.5, 12);
  });

  test('precision, recall and F1 differ with lengths', () => {
    // cand 6 words, ref 4 words, LCS "the cat the mat"... cand: the cat sat on the mat; ref: the cat mat
    // LCS = the cat mat = 3: P = 3/6, R = 3/3, F1 = 2·0.5·1/1.5 = 2/3
    const r = rougeL('The cat sat on the mat', 'the cat mat');
    expect(r.precision).toBeCloseTo(0.5, 12);
    expect(r.recall).toBeCloseTo(1, 12);
    expect(r.f1).toBeCloseTo(2 / 3, 12);
    expect(rougeL('', 'x').f1).toBe(0);
    expect(rougeL('', '').f1).toBe(1);
    expect(rougeLTokens([1, 2, 3], [3, 2, 1]).f1).toBeCloseTo(1 / 3, 12);
  });

  test('word tokens and exact match', () => {
    expect(wordTokens('GenServer.call/3, fine!')).toEqual(['genserver', '.', 'call', '/', '3', ',', 'fine', '!']);
    expect(exactMatch('  a  b\n', 'a b')).toBe(true);
    expect(exactMatch('a b', 'a c')).toBe(false);
  });
});
