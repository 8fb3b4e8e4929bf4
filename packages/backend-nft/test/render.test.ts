import { MAX_CIDRS_PER_FAMILY } from '@route-controller/core';
import { describe, expect, it } from 'vitest';
import { DEFAULT_LAYOUT, type NftLayout } from '../src/layout.js';
import type { NftCommand, NftRule, NftSet } from '../src/nft-json.js';
import {
  renderElementTransaction,
  renderRemoveTransaction,
  renderReplaceTransaction,
  renderWriteCommand,
} from '../src/render.js';
import { documentOf, expectGolden, PLAIN_LAYOUT, want } from './helpers.js';

describe('golden payloads', () => {
  it('empty desired state: remove our table, tolerating its absence', () => {
    expectGolden('empty', renderRemoveTransaction());
  });

  it('IPv4 only, drop', () => {
    expectGolden('v4-only-drop', renderReplaceTransaction(want('10.96.0.0/12')));
  });

  it('IPv6 only, drop', () => {
    expectGolden('v6-only-drop', renderReplaceTransaction(want('fd00:10:96::/108')));
  });

  it('dual-stack, drop', () => {
    const document = renderReplaceTransaction(want('10.96.0.0/12, fd00:10:96::/108, 10.100.0.0/24'));
    expectGolden('dual-stack-drop', document);
  });

  it('dual-stack, reject', () => {
    const document = renderReplaceTransaction(want('10.96.0.0/12, fd00:10:96::/108', 'reject'));
    expectGolden('dual-stack-reject', document);
  });

  it('an element-only change: deletes before adds, no table, chain or rule commands', () => {
    const [a, b] = want('10.96.0.0/16, 10.97.0.0/16').cidrs.ipv4;
    const [c] = want('fd00:10:96::/112').cidrs.ipv6;
    if (!a || !b || !c) throw new Error('bad test data');
    const document = renderElementTransaction([
      { family: 'ipv4', remove: [a], add: [b] },
      { family: 'ipv6', remove: [], add: [c] },
    ]);
    expectGolden('element-change', document);
    const verbs = document.nftables.map((command) => Object.keys(command)[0]);
    expect(verbs).toEqual(['delete', 'add', 'add']);
    const objects = document.nftables.flatMap((command) => Object.values(command).map((o) => Object.keys(o)));
    expect(objects.flat()).toEqual(['element', 'element', 'element']);
  });

  it('dual-stack, drop, without hit records (records: false, or nft older than 1.0.6)', () => {
    const document = renderReplaceTransaction(want('10.96.0.0/12, fd00:10:96::/108, 10.100.0.0/24'), PLAIN_LAYOUT);
    expectGolden('dual-stack-drop-plain', document);
  });

  it('a v4-only layout has no IPv6 set or rule', () => {
    const layout: NftLayout = { ...DEFAULT_LAYOUT, families: ['ipv4'] };
    expectGolden('v4-layout-drop', renderReplaceTransaction(want('10.96.0.0/12'), layout));
  });

  it('the full replace starts with add, delete, add of our table and nothing else', () => {
    const commands = renderReplaceTransaction(want('10.96.0.0/12')).nftables;
    expect(commands.slice(0, 3)).toEqual([
      { add: { table: { family: 'inet', name: 'route-controller' } } },
      { delete: { table: { family: 'inet', name: 'route-controller' } } },
      {
        add: {
          table: {
            family: 'inet',
            name: 'route-controller',
            comment: 'route-controller: drops forwarded packets to Service CIDRs',
          },
        },
      },
    ]);
    // Every object we name lives in our table.
    for (const command of commands) {
      const object = Object.values(command)[0] as Record<string, { table?: string; name?: string }>;
      const [kind, body] = Object.entries(object)[0] ?? [];
      expect(kind === 'table' ? body?.name : body?.table).toBe('route-controller');
    }
  });
});

describe('the write command', () => {
  it('is nft -j with the whole document in one argument', () => {
    const document = renderReplaceTransaction(want('10.96.0.0/12, fd00:10:96::/108'));
    const command = renderWriteCommand(document);
    expect(command.file).toBe('nft');
    expect(command.args).toEqual(['-j', JSON.stringify(document)]);
    expect(command.input).toBeUndefined();
    expect(documentOf(command)).toEqual(document);
  });

  it('puts extra flags before the payload and honours a custom binary', () => {
    const command = renderWriteCommand(renderRemoveTransaction(), '/usr/sbin/nft', ['--check']);
    expect(command.file).toBe('/usr/sbin/nft');
    expect(command.args.slice(0, 2)).toEqual(['-j', '--check']);
    expect(command.args[2]?.startsWith('{"nftables":[')).toBe(true);
    expect(command.args).toHaveLength(3);
  });

  it(`the largest transaction (${MAX_CIDRS_PER_FAMILY} CIDRs per family, records on) is one add element per set and fits one argument with room to spare`, () => {
    const cidrs: string[] = [];
    for (let i = 0; i < MAX_CIDRS_PER_FAMILY; i += 1) {
      cidrs.push(
        `10.${64 + Math.floor(i / 256)}.${i % 256}.0/24`,
        `fd00:1000:${i.toString(16)}:ffff:ffff:ffff:ffff:0/112`,
      );
    }
    const document = renderReplaceTransaction(want(cidrs.join(',')));
    const elementCommands = document.nftables.filter((c) => 'add' in c && 'element' in c.add);
    expect(elementCommands).toHaveLength(2);
    const [argument] = renderWriteCommand(document).args.slice(1);
    // The kernel refuses a single argument over 128 KiB (MAX_ARG_STRLEN); a quarter of it is the bound kept.
    expect(Buffer.byteLength(argument ?? '')).toBeLessThan(32 * 1024);
  });
});

describe('the hit records in the full transaction', () => {
  const added = (commands: readonly NftCommand[]) =>
    commands.flatMap((command) => ('add' in command ? [command.add] : []));
  const rules = (commands: readonly NftCommand[]): NftRule[] =>
    added(commands).flatMap((object) => ('rule' in object ? [object.rule] : []));
  const sets = (commands: readonly NftCommand[]): NftSet[] =>
    added(commands).flatMap((object) => ('set' in object ? [object.set] : []));

  it('records in a chain of its own: the forward rule jumps there, the update and the verdict are two rules', () => {
    for (const action of ['drop', 'reject'] as const) {
      const commands = renderReplaceTransaction(want('10.96.0.0/12, fd00:10:96::/108', action)).nftables;
      const forward = rules(commands).filter((rule) => rule.chain === 'forward');
      expect(forward.map((rule) => rule.expr.map((statement) => Object.keys(statement)[0]))).toEqual([
        ['match', 'counter', 'goto'],
        ['match', 'counter', 'goto'],
      ]);
      for (const chain of ['blocked-v4', 'blocked-v6']) {
        // Never the update and the verdict in one rule: a full set skips the rest of that rule.
        const steps = rules(commands)
          .filter((rule) => rule.chain === chain)
          .map((rule) => rule.expr.map((statement) => Object.keys(statement)[0]));
        expect(steps).toEqual([['set'], [action]]);
      }
    }
  });

  it('declares bounded record sets with a timeout and a counter per element, and never the dynamic flag', () => {
    const records = sets(renderReplaceTransaction(want('10.96.0.0/12')).nftables).filter((set) =>
      set.name.startsWith('stale-'),
    );
    expect(
      records.map(({ name, type, flags, timeout, size, stmt }) => ({ name, type, flags, timeout, size, stmt })),
    ).toEqual([
      {
        name: 'stale-v4',
        type: ['ipv4_addr', 'ipv4_addr'],
        flags: ['timeout'],
        timeout: 600,
        size: 4096,
        stmt: [{ counter: null }],
      },
      {
        name: 'stale-v6',
        type: ['ipv6_addr', 'ipv6_addr'],
        flags: ['timeout'],
        timeout: 600,
        size: 4096,
        stmt: [{ counter: null }],
      },
    ]);
  });

  it('takes the bound and timeout from the layout', () => {
    const layout: NftLayout = { ...DEFAULT_LAYOUT, records: { size: 8, timeoutSeconds: 2 } };
    const [set] = sets(renderReplaceTransaction(want('10.96.0.0/12'), layout).nftables).filter(
      (s) => s.name === 'stale-v4',
    );
    expect(set).toMatchObject({ size: 8, timeout: 2 });
  });

  it('names each chain and set before the rule that uses it', () => {
    const commands = renderReplaceTransaction(want('10.96.0.0/12, fd00:10:96::/108')).nftables;
    const order = added(commands).map((object) => {
      const [kind, body] = Object.entries(object)[0] as [string, { name?: string; chain?: string }];
      return kind === 'rule' ? `rule in ${body.chain}` : `${kind} ${body.name}`;
    });
    const before = (a: string, b: string) =>
      expect(order.indexOf(a), `${a} before ${b}`).toBeLessThan(order.indexOf(b));
    before('set stale-v4', 'rule in blocked-v4');
    before('chain blocked-v4', 'rule in blocked-v4');
    before('rule in blocked-v4', 'rule in forward');
    before('chain blocked-v6', 'rule in forward');
  });

  it('the element-only change names no record set or chain: the records survive it', () => {
    const [a] = want('10.97.0.0/16').cidrs.ipv4;
    if (!a) throw new Error('bad test data');
    const text = JSON.stringify(renderElementTransaction([{ family: 'ipv4', remove: [], add: [a] }]));
    expect(text).not.toMatch(/stale-|blocked-/);
  });
});
