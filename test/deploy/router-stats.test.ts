// The A/B statistics against reference values computed with scipy 1.x / numpy (scipy.stats.t.ppf,
// ttest_ind(equal_var=False)), hard-coded here.
import { incompleteBeta, meanCi95, normalCdf, quantile, tQuantile, tTwoSidedP, twoProportionZTest, welchTTest } from '../../src/deploy/router-stats.js';

describe('router statistics', () => {
  test('t distribution, normal CDF, incomplete beta', () => {
    expect(tQuantile(0.975, 10)).toBeCloseTo(2.228138851986274, 8);
    expect(tQuantile(0.975, 3.5)).toBeCloseTo(2.9400886379827282, 8);
    expect(tTwoSidedP(1.5, 4.2)).toBeCloseTo(0.20468078412567128, 9);
    expect(tTwoSidedP(2.228138851986274, 10)).toBeCloseTo(0.05, 10);
    expect(normalCdf(1.959963984540054)).toBeCloseTo(0.975, 6);
    expect(normalCdf(-1)).toBeCloseTo(0.15865525393145707, 6);
    expect(incompleteBeta(2, 3, 0.4)).toBeCloseTo(0.5248, 10); // I_0.4(2,3) = 1 - sum_{j<2} C(4,j) .4^j .6^(4-j)
  });

  test('Welch t-test, two-proportion z, quantiles, mean CI', () => {
    const w = welchTTest([2, 4, 6, 8, 10], [1, 2, 3, 4, 5])!;
    expect(w.statistic).toBeCloseTo(-1.8973665961010275, 10);
    expect(w.df).toBeCloseTo(5.882352941176471, 10);
    expect(w.p).toBeCloseTo(0.10753119493062728, 8);
    expect(w.difference).toBe(-3);
    expect(welchTTest([1], [1, 2])).toBeNull();
    expect(welchTTest([3, 3], [3, 3])).toBeNull();
    // 10/100 vs 25/100: z = 0.15 / sqrt(0.175*0.825*0.02)
    const z = twoProportionZTest(10, 100, 25, 100)!;
    expect(z.statistic).toBeCloseTo(0.15 / Math.sqrt(0.175 * 0.825 * 0.02), 12);
    expect(z.p).toBeCloseTo(2 * (1 - normalCdf(z.statistic)), 12);
    expect(z.p).toBeLessThan(0.01);
    expect(twoProportionZTest(0, 10, 0, 10)).toBeNull();
    // nearest rank: the ceil(q·n)-th smallest
    expect(quantile([1, 5, 2, 8, 3], 0.5)).toBe(3);
    expect(quantile([1, 5, 2, 8, 3], 0.95)).toBe(8);
    expect(quantile([1, 5, 2, 8, 3], 0.6)).toBe(3);
    expect(quantile([1, 5, 2, 8, 3], 0.61)).toBe(5);
    expect(quantile([], 0.5)).toBeNull();
    const m = meanCi95([4, 5, 4, 5, 4, 5]);
    expect(m.mean).toBe(4.5);
    const half = 2.570581835636314 * Math.sqrt(0.3 / 6); // t.ppf(0.975, 5) * s / sqrt(n)
    expect(m.ci95![0]).toBeCloseTo(4.5 - half, 8);
    expect(m.ci95![1]).toBeCloseTo(4.5 + half, 8);
  });
});
