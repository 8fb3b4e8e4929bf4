import { ErrorCodes, isRouteControllerError } from '@route-controller/core';
import { describe, expect, it } from 'vitest';
import {
  countRules,
  findTable,
  hasChain,
  mentionsLegacyTables,
  parseSave,
  quoteToken,
  targetOf,
  tokenizeRule,
} from '../src/parse-save.js';
import { BUSY_NODE_FILTER } from './samples.js';

describe('parseSave', () => {
  it('reads tables, chains, rules, positions and [packets:bytes] counters', () => {
    const dump = parseSave(BUSY_NODE_FILTER);
    expect(dump.tables.map((t) => t.name)).toEqual(['filter']);
    const filter = findTable(dump, 'filter');
    expect(filter?.chains.map((c) => [c.name, c.policy, c.builtin])).toEqual([
      ['INPUT', 'ACCEPT', true],
      ['FORWARD', 'DROP', true],
      ['OUTPUT', 'ACCEPT', true],
      ['DOCKER', '-', false],
      ['DOCKER-USER', '-', false],
      ['KUBE-FORWARD', '-', false],
      ['ROUTE-CONTROLLER', '-', false],
      ['USER-FW', '-', false],
    ]);
    const forward = filter?.rules.filter((r) => r.chain === 'FORWARD') ?? [];
    expect(forward.map((r) => [r.position, targetOf(r)])).toEqual([
      [1, 'ACCEPT'],
      [2, 'ROUTE-CONTROLLER'],
      [3, 'KUBE-FORWARD'],
      [4, 'DOCKER-USER'],
      [5, 'ROUTE-CONTROLLER'],
    ]);
    expect(forward[1]?.counters).toEqual({ packets: 40, bytes: 2400 });
    expect(forward[1]?.spec).toBe(
      '-m comment --comment "route-controller: block forwarded traffic to Service CIDRs" -j ROUTE-CONTROLLER',
    );
    const ours = filter?.rules.filter((r) => r.chain === 'ROUTE-CONTROLLER') ?? [];
    expect(ours.map((r) => [r.position, r.tokens[1], r.counters])).toEqual([
      [1, '10.96.0.0/16', { packets: 31, bytes: 1860 }],
      [2, '10.1.0.0/16', { packets: 9, bytes: 540 }],
    ]);
    expect(dump.legacyTablesPresent).toBe(false);
  });

  it('reads output saved without -c (no counters) and several tables', () => {
    const text = [
      '*nat',
      ':PREROUTING ACCEPT [0:0]',
      ':KUBE-SERVICES - [0:0]',
      '-A PREROUTING -m comment --comment "kubernetes service portals" -j KUBE-SERVICES',
      '-A KUBE-SERVICES -d 10.96.0.10/32 -j DNAT --to-destination 10.244.2.2',
      'COMMIT',
      '*mangle',
      ':KUBE-IPTABLES-HINT - [0:0]',
      'COMMIT',
    ].join('\n');
    const dump = parseSave(text);
    expect(dump.tables.map((t) => t.name)).toEqual(['nat', 'mangle']);
    expect(findTable(dump, 'nat')?.rules[1]?.counters).toBeUndefined();
    expect(hasChain(dump, 'KUBE-IPTABLES-HINT')).toBe(true);
    expect(hasChain(dump, 'KUBE-KUBELET-CANARY')).toBe(false);
    expect(countRules(dump)).toBe(2);
  });

  it('ignores the iptables-nft legacy-tables warning as a rule, and records it', () => {
    const warning = '# Warning: iptables-legacy tables present, use iptables-legacy-save to see them';
    const dump = parseSave(`${warning}\n${BUSY_NODE_FILTER}`);
    expect(dump.legacyTablesPresent).toBe(true);
    expect(countRules(dump)).toBe(countRules(parseSave(BUSY_NODE_FILTER)));
    expect(mentionsLegacyTables(`${warning}\n`)).toBe(true);
    expect(mentionsLegacyTables('iptables-nft-save v1.8.9: something else')).toBe(false);
  });

  it('returns no tables for empty output (iptables-legacy-save on a node without legacy tables)', () => {
    expect(parseSave('')).toEqual({ tables: [], legacyTablesPresent: false });
  });

  it('counts rules leaving out our own chain and jumps to it', () => {
    const dump = parseSave(BUSY_NODE_FILTER);
    expect(countRules(dump)).toBe(12);
    expect(countRules(dump, 'ROUTE-CONTROLLER')).toBe(8);
  });

  it.each([
    ['a rule outside a table', '-A FORWARD -j ACCEPT\n'],
    ['a table never committed', '*filter\n:INPUT ACCEPT [0:0]\n'],
    ['a nested table', '*filter\n*nat\nCOMMIT\n'],
    ['a line of unknown shape', '*filter\n-I FORWARD 1 -j ACCEPT\nCOMMIT\n'],
    ['an unterminated quote', '*filter\n-A FORWARD -m comment --comment "oops -j ACCEPT\nCOMMIT\n'],
  ])('refuses %s with ERR_RC_UNEXPECTED_OUTPUT', (_name, text) => {
    let caught: unknown;
    try {
      parseSave(text);
    } catch (error) {
      caught = error;
    }
    expect(isRouteControllerError(caught, ErrorCodes.UnexpectedOutput)).toBe(true);
  });
});

describe('tokenizeRule', () => {
  it('splits as iptables-restore does, honouring quotes and escapes inside them', () => {
    expect(tokenizeRule('-s 192.0.2.0/24 -m comment --comment "user: \\"quoted\\" \\\'x\\\'" -j DROP')).toEqual([
      '-s',
      '192.0.2.0/24',
      '-m',
      'comment',
      '--comment',
      'user: "quoted" \'x\'',
      '-j',
      'DROP',
    ]);
    expect(tokenizeRule('  -j   ACCEPT  ')).toEqual(['-j', 'ACCEPT']);
    expect(tokenizeRule('--comment ""')).toEqual(['--comment', '']);
  });

  it('round-trips through quoteToken', () => {
    const tokens = ['-m', 'comment', '--comment', 'a "b" \\ c\'d', '-j', 'ROUTE-CONTROLLER'];
    expect(tokenizeRule(tokens.map(quoteToken).join(' '))).toEqual(tokens);
    expect(quoteToken('10.96.0.0/16')).toBe('10.96.0.0/16');
    expect(quoteToken('fd00:10:96::/112')).toBe('fd00:10:96::/112');
  });

  it('finds -j and -g targets', () => {
    expect(targetOf({ tokens: tokenizeRule('-i eth0 -g ROUTE-CONTROLLER') })).toBe('ROUTE-CONTROLLER');
    expect(targetOf({ tokens: tokenizeRule('-i eth0') })).toBeUndefined();
  });
});
