import { describe, expect, it } from 'vitest';
import { benefit, minimumRounds, signTail } from '../bench/tricks.js';

// The bench's verdict on each start-up trick decides whether the trick stays in the product.
describe("the tricks section's sign test", () => {
  it('gives the binomial tail: all 10 of 10 rounds one way is 1 in 1,024, 9 of 10 is 11 in 1,024', () => {
    expect(signTail(10, 10)).toBeCloseTo(1 / 1024, 10);
    expect(signTail(9, 10)).toBeCloseTo(11 / 1024, 10);
    expect(signTail(0, 10)).toBe(1);
  });

  it('takes all 10 of 10 rounds, or 28 of 40, as more than chance at the 1% level', () => {
    expect(minimumRounds(10)).toBe(10);
    expect(minimumRounds(40)).toBe(28);
  });

  it('says a trick saves when every round saves at least 1% of the figure, and costs the other way', () => {
    expect(benefit(Array(10).fill(6), 50)).toMatchObject({ verdict: 'saves', median: 6, rounds: 10, n: 10 });
    expect(benefit(Array(10).fill(-6), 50)).toMatchObject({ verdict: 'costs', median: -6, rounds: 10 });
  });

  it('calls a saving in 9 of 10 rounds noise, and one under 1% of the figure negligible', () => {
    expect(benefit([...Array(9).fill(6), -1], 50).verdict).toBe('noise');
    expect(benefit(Array(10).fill(0.3), 50).verdict).toBe('negligible');
  });
});
