import { describe, expect, it } from 'vitest';
import { MAX_LINES_PER_READ, StaleLogBudget } from '../src/stale/stale-log-budget.js';
import type { StaleNotice } from '../src/stale/stale-notices.js';

const SECOND = 1_000;

const notice = (destination: string, packets: number, kind: StaleNotice['kind'] = 'continuing'): StaleNotice => ({
  kind,
  destination,
  sources: [{ address: '10.244.0.7', packets }],
  packets,
  windowMs: 60 * SECOND,
});
const many = (count: number, kind: StaleNotice['kind'] = 'continuing') =>
  Array.from({ length: count }, (_, n) => notice(`10.96.0.${n}`, n + 1, kind));

describe('StaleLogBudget', () => {
  it('shows a small read whole, with no summary', () => {
    const { shown, heldBack } = new StaleLogBudget().split(many(3), 0);
    expect(shown).toHaveLength(3);
    expect(heldBack).toBeUndefined();
  });

  it('shows new pairs first, then the destinations dialled most, and sums up the rest', () => {
    const budget = new StaleLogBudget();
    const { shown, heldBack } = budget.split([...many(30), notice('10.96.9.9', 1, 'new-pair')], 0);
    expect(shown).toHaveLength(MAX_LINES_PER_READ);
    expect(shown[0]?.destination).toBe('10.96.9.9');
    expect(shown.slice(1).map((n) => n.packets)).toEqual([30, 29, 28, 27, 26, 25, 24, 23, 22]);
    // 21 held back: packets 1..21.
    expect(heldBack).toEqual({ pairs: 21, destinations: 21, packets: 231 });
  });

  it('reads faster than the refill share the budget, and a read without a token for its summary hands it on', () => {
    const budget = new StaleLogBudget();
    expect(budget.split(many(20), 0).shown).toHaveLength(MAX_LINES_PER_READ);
    // Half a second later: nothing left, not even for the summary.
    const starved = budget.split(many(20), SECOND / 2);
    expect(starved).toEqual({ shown: [], heldBack: undefined });
    // Two seconds later: two tokens, one line and the summary of everything held since.
    const next = budget.split(many(5), 2.5 * SECOND);
    expect(next.shown).toHaveLength(1);
    expect(next.heldBack).toEqual({ pairs: 20 + 4, destinations: 20 + 4, packets: 210 + 10 });
  });
});
