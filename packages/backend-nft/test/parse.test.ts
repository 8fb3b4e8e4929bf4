import { cidrTexts, ErrorCodes, type ObservedState } from '@route-controller/core';
import { describe, expect, it } from 'vitest';
import { DEFAULT_LAYOUT, type NftLayout } from '../src/layout.js';
import { flagsOf, parseListing, parseOurTable } from '../src/parse.js';
import { fixture, PLAIN_LAYOUT } from './helpers.js';

// The fixtures of this first part predate hit records: they are read with the plain layout.
const observe = (name: string, layout: NftLayout = PLAIN_LAYOUT) => parseOurTable(fixture(name), layout);

/** The observation without Cidr objects, for readable expectations. */
function summary(observed: ObservedState) {
  return {
    present: observed.present,
    action: observed.action,
    ipv4: cidrTexts(observed.ipv4.cidrs),
    ipv6: cidrTexts(observed.ipv6.cidrs),
    counters: { ipv4: observed.ipv4.counters, ipv6: observed.ipv6.counters },
    problems: observed.problems,
  };
}

describe('parsing our table as nft 1.0.6 lists it', () => {
  it('reads what apply wrote: CIDRs in canonical order, the action, counters, no problems', () => {
    expect(summary(observe('applied-dual-stack-drop'))).toEqual({
      present: true,
      action: 'drop',
      // nft prints a /32 or /128 element as a bare address.
      ipv4: ['10.0.0.1/32', '10.96.0.0/16', '10.100.0.0/24'],
      ipv6: ['fd00::1/128', 'fd00:10:96::/112'],
      counters: { ipv4: { packets: 0, bytes: 0 }, ipv6: { packets: 0, bytes: 0 } },
      problems: [],
    });
  });

  it('reads reject, and an empty IPv6 set as no CIDRs but a rule with counters', () => {
    expect(summary(observe('applied-v4-only-reject'))).toEqual({
      present: true,
      action: 'reject',
      ipv4: ['10.96.0.0/12'],
      ipv6: [],
      counters: { ipv4: { packets: 0, bytes: 0 }, ipv6: { packets: 0, bytes: 0 } },
      problems: [],
    });
  });

  it('reads the drop counters per family', () => {
    const observed = observe('counters');
    expect(observed.ipv4.counters).toEqual({ packets: 7, bytes: 588 });
    expect(observed.ipv6.counters).toEqual({ packets: 3, bytes: 312 });
    expect(observed.problems).toEqual([]);
  });

  it('reports a half-made table: the chain on the wrong hook, a missing set and missing rules', () => {
    const observed = observe('half-made');
    expect(summary(observed)).toMatchObject({ present: true, action: null, ipv4: ['10.1.0.0/16'], ipv6: [] });
    expect(observed.ipv4.counters).toBeUndefined();
    expect(observed.problems).toEqual([
      'chain forward has hook "input", expected "forward"',
      'the ipv4 rule is missing',
      'set service-cidrs-v6 is missing',
      'the ipv6 rule is missing',
    ]);
  });

  it('reports the wrong priority and policy', () => {
    expect(observe('wrong-priority').problems).toEqual([
      'chain forward has prio -10, expected 20',
      'chain forward has policy "drop", expected "accept"',
    ]);
  });

  it("reports route-controller 0.1.0's chain at priority filter as drift, naming kube-proxy's REJECT it ran before", () => {
    const observed = observe('old-layout-0.1.0');
    expect(summary(observed)).toMatchObject({ present: true, action: 'drop', ipv4: expect.any(Array) });
    expect(observed.problems).toEqual([
      "chain forward runs at priority filter (0), before kube-proxy's REJECT, as route-controller 0.1.0 wrote it; expected filter + 20",
    ]);
  });

  it('reports a regular chain where the base chain should be', () => {
    expect(observe('regular-chain').problems).toEqual([
      'chain forward is a regular chain, not a base chain on the forward hook',
    ]);
  });

  it('reports rules with the wrong expression, and the rules they should have been as missing', () => {
    const observed = observe('wrong-expression');
    expect(observed.action).toBeNull();
    expect(observed.problems).toHaveLength(4);
    expect(observed.problems[0]).toMatch(/^rule \(handle \d+\) in chain forward is not one we write: .*"saddr"/);
    expect(observed.problems[1]).toMatch(/^rule \(handle \d+\) in chain forward is not one we write: .*"ip6"/);
    expect(observed.problems.slice(2)).toEqual(['the ipv4 rule is missing', 'the ipv6 rule is missing']);
  });

  it('reports objects in our table that we never create', () => {
    const observed = observe('extra-objects');
    expect(summary(observed)).toMatchObject({ action: 'drop', ipv4: ['10.96.0.0/16'], ipv6: ['fd00:10:96::/112'] });
    expect(observed.problems).toEqual([
      expect.stringMatching(/^unexpected counter mine \(handle \d+\) in our table$/),
      expect.stringMatching(/^unexpected set other \(handle \d+\) in our table$/),
      expect.stringMatching(/^unexpected chain extra \(handle \d+\) in our table$/),
      expect.stringMatching(/^rule \(handle \d+\) in chain forward is not one we write: .*"accept"/),
      expect.stringMatching(/^rule \(handle \d+\) in chain extra is not one we write: /),
    ]);
  });

  it('reports elements that are not CIDRs we write, keeping the ones that are', () => {
    const observed = observe('odd-elements');
    expect(cidrTexts(observed.ipv4.cidrs)).toEqual([]);
    expect(observed.problems).toEqual([
      'set service-cidrs-v4 holds {"range":["10.0.0.1","10.0.0.5"]}, which is not a Service CIDR we write',
      'set service-cidrs-v4 holds {"elem":{"val":{"prefix":{"addr":"10.96.0.0","len":16}},"comment":"hand-added"}}, which is not a Service CIDR we write',
      // Too broad to be a Service range: core refuses /1.
      'set service-cidrs-v4 holds {"prefix":{"addr":"128.0.0.0","len":1}}, which is not a Service CIDR we write',
    ]);
  });

  it('reports an empty table as present with everything missing', () => {
    expect(summary(observe('empty-table'))).toEqual({
      present: true,
      action: null,
      ipv4: [],
      ipv6: [],
      counters: { ipv4: undefined, ipv6: undefined },
      problems: [
        'chain forward is missing',
        'set service-cidrs-v4 is missing',
        'the ipv4 rule is missing',
        'set service-cidrs-v6 is missing',
        'the ipv6 rule is missing',
      ],
    });
  });

  it('reports rules that disagree on the action, with no action', () => {
    const observed = observe('mixed-actions');
    expect(observed.action).toBeNull();
    expect(observed.problems).toEqual(['our rules disagree on the action (drop, reject)']);
  });

  it('reports a rule without our ownership comment', () => {
    expect(observe('no-comment').problems).toEqual(['our ipv4 rule lacks the ownership comment']);
  });

  it('judges against the configured families: an IPv6 set is unexpected in a v4-only layout', () => {
    const observed = observe('applied-dual-stack-drop', { ...PLAIN_LAYOUT, families: ['ipv4'] });
    expect(cidrTexts(observed.ipv6.cidrs)).toEqual([]);
    expect(observed.problems).toEqual([
      expect.stringMatching(/^unexpected set service-cidrs-v6 /),
      expect.stringMatching(/^rule \(handle \d+\) in chain forward is not one we write: .*"ip6"/),
    ]);
  });
});

describe('schema checks', () => {
  const withVersion = (version: unknown) =>
    fixture('applied-dual-stack-drop').replace(
      '"json_schema_version": 1',
      `"json_schema_version": ${JSON.stringify(version)}`,
    );

  it('accepts json_schema_version 1', () => {
    expect(parseListing(withVersion(1)).length).toBeGreaterThan(0);
  });

  it.each([2, '1', null])('refuses json_schema_version %j with ERR_RC_UNEXPECTED_OUTPUT', (version) => {
    expect(() => parseOurTable(withVersion(version), PLAIN_LAYOUT)).toThrow(
      expect.objectContaining({ code: ErrorCodes.UnexpectedOutput, hint: expect.any(String) }),
    );
  });

  it('refuses output without metainfo, without an nftables array, or not JSON at all', () => {
    for (const text of [
      '{"nftables": [{"table": {"family": "inet", "name": "route-controller"}}]}',
      '{"tables": []}',
      'table inet route-controller {}',
    ]) {
      expect(() => parseOurTable(text, PLAIN_LAYOUT)).toThrow(
        expect.objectContaining({ code: ErrorCodes.UnexpectedOutput }),
      );
    }
  });

  it('treats a listing with nothing of ours as nothing observed', () => {
    const observed = parseOurTable(
      '{"nftables": [{"metainfo": {"json_schema_version": 1}}, {"table": {"family": "inet", "name": "user"}}]}',
      DEFAULT_LAYOUT,
    );
    expect(observed.present).toBe(false);
  });
});

describe('parsing our table with hit records (the default layout)', () => {
  const withRecords = (name: string) => parseOurTable(fixture(name), DEFAULT_LAYOUT);

  it('reads what apply wrote, hits and all, as in step: the records are never drift', () => {
    expect(summary(withRecords('applied-records-hits'))).toEqual({
      present: true,
      action: 'drop',
      ipv4: ['10.0.0.1/32', '10.96.0.0/16', '10.100.0.0/24'],
      ipv6: ['fd00::1/128', 'fd00:10:96::/112'],
      // The rule's counter counts every blocked packet, recorded or not.
      counters: { ipv4: { packets: 7, bytes: 588 }, ipv6: { packets: 6, bytes: 624 } },
      problems: [],
    });
  });

  it('reads the action from the record chain: reject', () => {
    expect(summary(withRecords('applied-records-v4-only-reject'))).toMatchObject({
      action: 'reject',
      ipv4: ['10.96.0.0/12'],
      problems: [],
    });
  });

  it("reads the research notes' listing (table and sets without comments, as nft 1.0.6 keeps them) as in step", () => {
    const observed = withRecords('records-research-listing');
    expect(observed.problems).toEqual([]);
    expect(cidrTexts(observed.ipv4.cidrs)).toEqual(['10.96.0.0/16']);
    expect(observed.ipv4.counters).toEqual({ packets: 12, bytes: 1008 });
  });

  it('takes flags printed as a bare string (nft 1.1.4) or with dynamic (nft 1.0.9+)', () => {
    expect(withRecords('records-flags-as-printed-later').problems).toEqual([]);
    expect(observe('applied-dual-stack-drop').problems).toEqual([]);
    expect(flagsOf('interval')).toEqual(['interval']);
    expect(flagsOf(['timeout', 'dynamic'])).toEqual(['timeout', 'dynamic']);
    expect(flagsOf(undefined)).toEqual([]);
  });

  it('reports record sets without their counter (what nft before 1.0.6 makes of our JSON)', () => {
    expect(withRecords('records-no-counter').problems).toEqual([
      'set stale-v4 has statements none, expected one counter per element',
      'set stale-v6 has statements none, expected one counter per element',
    ]);
  });

  it('reports the update inside the blocking rule (which lets packets through when the set is full)', () => {
    const observed = withRecords('records-same-rule');
    expect(observed.action).toBeNull();
    expect(observed.problems).toEqual([
      expect.stringMatching(/^rule \(handle \d+\) in chain forward is not one we write: .*"update"/),
      expect.stringMatching(/^rule \(handle \d+\) in chain forward is not one we write: .*"update"/),
      'the ipv4 rule is missing',
      'chain blocked-v4 is missing',
      'the ipv6 rule is missing',
      'chain blocked-v6 is missing',
    ]);
  });

  it('reports a record set of another bound or timeout, and a record chain that blocks before it records', () => {
    expect(withRecords('records-wrong-shape').problems).toEqual([
      'set stale-v4 has size 65535, expected 4096',
      'set stale-v4 has timeout 3600, expected 600',
      'chain blocked-v4 holds drop, update, expected update, then drop or reject',
    ]);
  });

  it('judges against the configured bound and timeout: the same table is drift for another one', () => {
    const problems = parseOurTable(fixture('applied-records-hits'), {
      ...DEFAULT_LAYOUT,
      records: { size: 8, timeoutSeconds: 2 },
    }).problems;
    expect(problems).toEqual([
      'set stale-v4 has size 4096, expected 8',
      'set stale-v4 has timeout 600, expected 2',
      'set stale-v6 has size 4096, expected 8',
      'set stale-v6 has timeout 600, expected 2',
    ]);
  });

  it('a table of the plain layout is drift for the records layout, and the other way round (so apply rebuilds)', () => {
    expect(parseOurTable(fixture('applied-dual-stack-drop'), DEFAULT_LAYOUT).problems).toEqual([
      expect.stringMatching(/^rule \(handle \d+\) in chain forward is not one we write: .*"drop"/),
      expect.stringMatching(/^rule \(handle \d+\) in chain forward is not one we write: .*"drop"/),
      'the ipv4 rule is missing',
      'set stale-v4 is missing',
      'chain blocked-v4 is missing',
      'the ipv6 rule is missing',
      'set stale-v6 is missing',
      'chain blocked-v6 is missing',
    ]);
    expect(observe('applied-records-hits').problems).toEqual([
      expect.stringMatching(/^unexpected set stale-v4 /),
      expect.stringMatching(/^unexpected set stale-v6 /),
      expect.stringMatching(/^unexpected chain blocked-v4 /),
      expect.stringMatching(/^unexpected chain blocked-v6 /),
      expect.stringMatching(/^rule \(handle \d+\) in chain blocked-v4 is not one we write/),
      expect.stringMatching(/^rule \(handle \d+\) in chain blocked-v4 is not one we write/),
      expect.stringMatching(/^rule \(handle \d+\) in chain blocked-v6 is not one we write/),
      expect.stringMatching(/^rule \(handle \d+\) in chain blocked-v6 is not one we write/),
      expect.stringMatching(/^rule \(handle \d+\) in chain forward is not one we write: .*"goto"/),
      expect.stringMatching(/^rule \(handle \d+\) in chain forward is not one we write: .*"goto"/),
      'the ipv4 rule is missing',
      'the ipv6 rule is missing',
    ]);
  });
});
