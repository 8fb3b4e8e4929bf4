import { describe, expect, it } from 'vitest';
import { parseCidr } from '../src/cidr.js';
import {
  assertValidDesiredState,
  type DesiredState,
  describeDesiredState,
  desiredState,
  MAX_CIDRS_PER_FAMILY,
  sameDesiredState,
} from '../src/desired-state.js';
import { ErrorCodes } from '../src/errors.js';
import { isInSync, NOTHING_OBSERVED, type ObservedState } from '../src/firewall-backend.js';
import { parseCidrList } from '../src/service-cidrs.js';

const cidr = (text: string) => parseCidr(text).cidr;
const state = (text: string, action: 'drop' | 'reject' = 'drop') => desiredState(parseCidrList(text).cidrs, action);

describe('desired state', () => {
  it('defaults to drop and no CIDRs', () => {
    const empty = desiredState();
    expect(empty.action).toBe('drop');
    expect(describeDesiredState(empty)).toBe('no Service CIDRs (nothing installed)');
  });

  it('describes itself', () => {
    expect(describeDesiredState(state('10.96.0.0/12,fd00::/108', 'reject'))).toBe(
      'reject forwarded packets to 10.96.0.0/12, fd00::/108',
    );
  });

  it('compares by action and CIDRs', () => {
    expect(sameDesiredState(state('10.96.0.0/12'), state(' 10.96.0.0/12 '))).toBe(true);
    expect(sameDesiredState(state('10.96.0.0/12'), state('10.96.0.0/12', 'reject'))).toBe(false);
    expect(sameDesiredState(state('10.96.0.0/12'), state('10.96.0.0/16'))).toBe(false);
  });

  it('accepts normalised states', () => {
    expect(() => assertValidDesiredState(state('10.96.0.0/12,10.200.0.0/16,fd00::/108'))).not.toThrow();
  });

  const bad: [string, DesiredState][] = [
    ['overlapping CIDRs', { action: 'drop', cidrs: { ipv4: [cidr('10.96.0.0/12'), cidr('10.96.1.0/24')], ipv6: [] } }],
    ['unsorted CIDRs', { action: 'drop', cidrs: { ipv4: [cidr('10.200.0.0/16'), cidr('10.96.0.0/16')], ipv6: [] } }],
    ['an IPv6 CIDR listed as IPv4', { action: 'drop', cidrs: { ipv4: [cidr('fd00::/108')], ipv6: [] } }],
    [
      'a forged CIDR',
      { action: 'drop', cidrs: { ipv4: [{ ...cidr('10.96.0.0/12'), text: '10.96.0.0/12; flush ruleset' }], ipv6: [] } },
    ],
    ['an unknown action', { action: 'accept' as 'drop', cidrs: { ipv4: [cidr('10.96.0.0/12')], ipv6: [] } }],
  ];
  for (const [name, desired] of bad) {
    it(`refuses ${name} with ERR_RC_INVALID_DESIRED_STATE`, () => {
      expect(() => assertValidDesiredState(desired)).toThrow(
        expect.objectContaining({ code: ErrorCodes.InvalidDesiredState }),
      );
    });
  }
});

describe('the cap on CIDRs per family', () => {
  const v4 = (count: number) =>
    Array.from({ length: count }, (_, i) => `10.${64 + Math.floor(i / 256)}.${i % 256}.0/24`).join(',');
  const v6 = (count: number) => Array.from({ length: count }, (_, i) => `fd00:1::${i.toString(16)}:0/112`).join(',');

  it(`takes ${MAX_CIDRS_PER_FAMILY} CIDRs in each family`, () => {
    const most = state(`${v4(MAX_CIDRS_PER_FAMILY)},${v6(MAX_CIDRS_PER_FAMILY)}`);
    expect(most.cidrs.ipv4).toHaveLength(MAX_CIDRS_PER_FAMILY);
    expect(() => assertValidDesiredState(most)).not.toThrow();
  });

  for (const [family, text] of [
    ['ipv4', () => v4(MAX_CIDRS_PER_FAMILY + 1)],
    ['ipv6', () => v6(MAX_CIDRS_PER_FAMILY + 1)],
  ] as const) {
    it(`desiredState refuses one ${family} CIDR more with ERR_RC_TOO_MANY_CIDRS, naming the family and the limit`, () => {
      const thrown = (() => {
        try {
          state(text());
        } catch (error) {
          return error as { code: string; hint?: string; details: Record<string, unknown> };
        }
        return undefined;
      })();
      expect(thrown?.code).toBe(ErrorCodes.TooManyCidrs);
      expect(thrown?.hint).toBeTruthy();
      expect(thrown?.details).toMatchObject({ family, count: MAX_CIDRS_PER_FAMILY + 1, limit: MAX_CIDRS_PER_FAMILY });
    });
  }

  it('assertValidDesiredState refuses a hand-built state over the cap with ERR_RC_TOO_MANY_CIDRS', () => {
    const many = parseCidrList(v4(MAX_CIDRS_PER_FAMILY + 1)).cidrs;
    expect(() => assertValidDesiredState({ action: 'drop', cidrs: many })).toThrow(
      expect.objectContaining({ code: ErrorCodes.TooManyCidrs }),
    );
  });
});

describe('isInSync', () => {
  const observed = (over: Partial<ObservedState>): ObservedState => ({
    present: true,
    action: 'drop',
    ipv4: { cidrs: [cidr('10.96.0.0/12')] },
    ipv6: { cidrs: [] },
    problems: [],
    ...over,
  });

  it('matches an identical state', () => expect(isInSync(observed({}), state('10.96.0.0/12'))).toBe(true));
  it('an empty desired state wants nothing present', () => {
    expect(isInSync(NOTHING_OBSERVED, desiredState())).toBe(true);
    expect(isInSync(observed({}), desiredState())).toBe(false);
  });
  it('sees a different action', () =>
    expect(isInSync(observed({ action: 'reject' }), state('10.96.0.0/12'))).toBe(false));
  it('sees other CIDRs', () => expect(isInSync(observed({}), state('10.96.0.0/16'))).toBe(false));
  it('sees drift reported as problems', () =>
    expect(isInSync(observed({ problems: ['jump not first'] }), state('10.96.0.0/12'))).toBe(false));
});
