import { NOTHING_OBSERVED } from '@route-controller/core';
import { describe, expect, it } from 'vitest';
import { decideTransaction } from '../src/decide.js';
import { DEFAULT_LAYOUT } from '../src/layout.js';
import { parseOurTable } from '../src/parse.js';
import { renderRemoveTransaction, renderReplaceTransaction } from '../src/render.js';
import { expectGolden, fixture, PLAIN_LAYOUT, want } from './helpers.js';

// These fixtures predate hit records: the plain layout judges them (the records layout below).
const applied = () => parseOurTable(fixture('applied-dual-stack-drop'), PLAIN_LAYOUT);
const SAME = '10.96.0.0/16, 10.100.0.0/24, 10.0.0.1/32, fd00:10:96::/112, fd00::1/128';

describe('deciding the transaction', () => {
  it('writes nothing when the table matches', () => {
    expect(decideTransaction(applied(), want(SAME), PLAIN_LAYOUT)).toEqual({
      kind: 'none',
      summary: 'in sync: nothing to change',
    });
  });

  it('writes nothing when nothing is installed and nothing is wanted', () => {
    expect(decideTransaction(NOTHING_OBSERVED, want(''), PLAIN_LAYOUT).kind).toBe('none');
  });

  it('removes the table when no CIDRs are wanted', () => {
    const decision = decideTransaction(applied(), want(''), PLAIN_LAYOUT);
    expect(decision).toEqual({
      kind: 'remove',
      document: renderRemoveTransaction(PLAIN_LAYOUT),
      summary: 'remove table inet route-controller',
    });
  });

  it('creates the table on a fresh node with the full transaction', () => {
    const desired = want('10.96.0.0/12');
    const decision = decideTransaction(NOTHING_OBSERVED, desired, PLAIN_LAYOUT);
    expect(decision.kind).toBe('replace');
    expect(decision.document).toEqual(renderReplaceTransaction(desired, PLAIN_LAYOUT));
    expect(decision.summary).toBe('create table inet route-controller: drop forwarded packets to 10.96.0.0/12');
  });

  it('changes only elements when the structure is right and the CIDRs differ', () => {
    const decision = decideTransaction(
      applied(),
      want('10.96.0.0/16, 10.200.0.0/16, fd00:10:96::/112, fd00:10:97::/112'),
      PLAIN_LAYOUT,
    );
    expect(decision.kind).toBe('elements');
    expect(decision.summary).toBe(
      'ipv4 set: add 1, remove 2 CIDRs; ipv6 set: add 1, remove 1 CIDRs; rules and counters untouched',
    );
    expectGolden('decided-element-change', decision.document);
  });

  it('changes only elements when a family goes from none to some', () => {
    const observed = parseOurTable(fixture('applied-v4-only-reject'), PLAIN_LAYOUT);
    const decision = decideTransaction(observed, want('10.96.0.0/12, fd00:10:96::/108', 'reject'), PLAIN_LAYOUT);
    expect(decision.kind).toBe('elements');
    expect(decision.document?.nftables).toEqual([
      {
        add: {
          element: {
            family: 'inet',
            table: 'route-controller',
            name: 'service-cidrs-v6',
            elem: [{ prefix: { addr: 'fd00:10:96::', len: 108 } }],
          },
        },
      },
    ]);
  });

  it('replaces the table when the action changes', () => {
    const desired = want(SAME, 'reject');
    const decision = decideTransaction(applied(), desired, PLAIN_LAYOUT);
    expect(decision.kind).toBe('replace');
    expect(decision.document).toEqual(renderReplaceTransaction(desired, PLAIN_LAYOUT));
    expect(decision.summary).toMatch(/^replace table inet route-controller \(action drop -> reject\)/);
  });

  it.each([
    'half-made',
    'wrong-priority',
    'old-layout-0.1.0',
    'regular-chain',
    'wrong-expression',
    'extra-objects',
    'odd-elements',
    'empty-table',
    'mixed-actions',
    'no-comment',
  ])('replaces the whole table from the drifted state %s, naming the drift', (name) => {
    const observed = parseOurTable(fixture(name), PLAIN_LAYOUT);
    const desired = want('10.96.0.0/16, fd00:10:96::/112');
    const decision = decideTransaction(observed, desired, PLAIN_LAYOUT);
    expect(decision.kind).toBe('replace');
    expect(decision.document).toEqual(renderReplaceTransaction(desired, PLAIN_LAYOUT));
    expect(decision.summary).toContain(observed.problems[0]);
  });

  it('the full replace from a half-made state matches its golden', () => {
    const observed = parseOurTable(fixture('half-made'), PLAIN_LAYOUT);
    const decision = decideTransaction(observed, want('10.96.0.0/16, 10.100.0.0/24, fd00:10:96::/112'), PLAIN_LAYOUT);
    expectGolden('decided-full-replace', decision.document);
  });
});

describe('deciding the transaction with hit records', () => {
  const hits = () => parseOurTable(fixture('applied-records-hits'), DEFAULT_LAYOUT);

  it('writes nothing when only the records changed: they are not ours to put right', () => {
    expect(decideTransaction(hits(), want(SAME), DEFAULT_LAYOUT).kind).toBe('none');
  });

  it('a change of CIDRs alone is an element-only change, which keeps the records', () => {
    const decision = decideTransaction(hits(), want('10.96.0.0/16, fd00:10:96::/112'), DEFAULT_LAYOUT);
    expect(decision.kind).toBe('elements');
    const kinds = decision.document?.nftables.flatMap((command) =>
      Object.values(command).flatMap((o) => Object.keys(o)),
    );
    expect(new Set(kinds)).toEqual(new Set(['element']));
    expect(JSON.stringify(decision.document)).not.toMatch(/stale-|blocked-/);
  });

  it('an action change rebuilds everything, records included', () => {
    const desired = want(SAME, 'reject');
    const decision = decideTransaction(hits(), desired, DEFAULT_LAYOUT);
    expect(decision.kind).toBe('replace');
    expect(decision.document).toEqual(renderReplaceTransaction(desired, DEFAULT_LAYOUT));
  });

  it.each(['records-no-counter', 'records-same-rule', 'records-wrong-shape', 'applied-dual-stack-drop'])(
    'rebuilds from %s, naming the drift',
    (name) => {
      const observed = parseOurTable(fixture(name), DEFAULT_LAYOUT);
      const decision = decideTransaction(observed, want('10.96.0.0/16'), DEFAULT_LAYOUT);
      expect(decision.kind).toBe('replace');
      expect(decision.summary).toContain(observed.problems[0]);
    },
  );
});
