import { isDeepStrictEqual } from 'node:util';
import { type CommandResult, ErrorCodes, NOTHING_OBSERVED, parseCidr } from '@route-controller/core';
import { anyOrder, FakeCommandRunner, type ScriptedCommand, type ScriptStep } from '@route-controller/core/testing';
import { describe, expect, it } from 'vitest';
import { DEFAULT_LAYOUT } from '../src/layout.js';
import { NFT_CAPABILITIES, NftBackend } from '../src/nft-backend.js';
import type { NftDocument } from '../src/nft-json.js';
import { probeDocument } from '../src/probe.js';
import { renderRemoveTransaction, renderReplaceTransaction } from '../src/render.js';
import { documentOf, fixture, PLAIN_LAYOUT, want } from './helpers.js';

const LIST = ['-j', 'list', 'table', 'inet', 'route-controller'];
const ABSENT: Partial<CommandResult> = {
  exitCode: 1,
  stderr: 'Error: No such file or directory\nlist table inet route-controller\n                ^^^^\n',
};
const list = (result: Partial<CommandResult>): ScriptedCommand => ({ file: 'nft', args: LIST, result });
const listing = (name: string) => list({ stdout: fixture(name) });
const write = (document: NftDocument, result: Partial<CommandResult> = {}): ScriptedCommand => ({
  file: 'nft',
  args: (args) => args[0] === '-j' && isDeepStrictEqual(JSON.parse(args.slice(1).join(' ')), document),
  result,
});
const anyWrite = (result: Partial<CommandResult> = {}): ScriptedCommand => ({
  file: 'nft',
  args: (args) => args[0] === '-j' && args[1]?.startsWith('{') === true,
  result,
});

/** The backend of the plain layout: the fixtures these tests read predate hit records (see the end). */
function backend(...script: ScriptedCommand[]) {
  const runner = new FakeCommandRunner(script);
  return { nft: new NftBackend({ runner, records: false }), runner };
}

const APPLIED = '10.96.0.0/16, 10.100.0.0/24, 10.0.0.1/32, fd00:10:96::/112, fd00::1/128';

describe('NftBackend', () => {
  it('is named nft and claims both families, both actions, counters, comments and records', () => {
    const nft = new NftBackend({ runner: new FakeCommandRunner() });
    expect(nft.name).toBe('nft');
    expect(nft.capabilities).toEqual({
      families: ['ipv4', 'ipv6'],
      actions: ['drop', 'reject'],
      counters: true,
      comments: true,
      events: true,
      records: true,
    });
    expect(nft.capabilities).toBe(NFT_CAPABILITIES);
    expect(nft.tableName).toBe('route-controller');
    expect(backend().nft.capabilities).toEqual({ ...NFT_CAPABILITIES, records: false });
  });

  describe('observe', () => {
    it('reads only our table, and an absent table is nothing observed', async () => {
      const { nft, runner } = backend(list(ABSENT));
      expect(await nft.observe()).toEqual(NOTHING_OBSERVED);
      runner.assertDone();
    });

    it('returns what the listing holds', async () => {
      const { nft } = backend(listing('counters'));
      const observed = await nft.observe();
      expect(observed.ipv4.counters).toEqual({ packets: 7, bytes: 588 });
      expect(observed.action).toBe('drop');
    });

    it('throws a coded error when listing is refused', async () => {
      const { nft } = backend(
        list({ exitCode: 1, stderr: 'netlink: Error: cache initialization failed: Operation not permitted\n' }),
      );
      await expect(nft.observe()).rejects.toMatchObject({
        code: ErrorCodes.FirewallPermission,
        hint: expect.any(String),
      });
    });

    it('throws ERR_RC_UNEXPECTED_OUTPUT on an unknown json_schema_version', async () => {
      const { nft } = backend(
        list({
          stdout: fixture('applied-dual-stack-drop').replace('"json_schema_version": 1', '"json_schema_version": 2'),
        }),
      );
      await expect(nft.observe()).rejects.toMatchObject({ code: ErrorCodes.UnexpectedOutput });
    });

    it('passes spawn failures on as coded errors', async () => {
      const { nft } = backend({ file: 'nft', args: LIST, fails: 'missing' });
      await expect(nft.observe()).rejects.toMatchObject({ code: ErrorCodes.CommandNotFound });
    });
  });

  describe('a listing that succeeds while saying it left something out', () => {
    // nft 1.0.6 on a set whose key type it does not know: exit 0, the set missing, one line on stderr.
    const partial = list({
      stdout: fixture('applied-dual-stack-drop'),
      stderr: 'netlink: Error: Unknown data type in set key 32767\n',
    });

    it('is ERR_RC_FIREWALL_UNREADABLE for observe, plan, apply and cleanup, and nothing is written', async () => {
      const { nft, runner } = backend(partial, partial, partial, partial);
      for (const call of [
        () => nft.observe(),
        () => nft.plan(want(APPLIED)),
        () => nft.apply(want('10.96.0.0/16')),
        () => nft.cleanup(),
      ]) {
        await expect(call()).rejects.toMatchObject({
          code: ErrorCodes.FirewallUnreadable,
          hint: expect.stringContaining('nft delete table inet route-controller'),
          details: { stderr: expect.stringContaining('Unknown data type') },
        });
      }
      runner.assertDone();
    });
  });

  describe('plan and apply', () => {
    it('creates the table on a fresh node with exactly the planned command', async () => {
      const desired = want('10.96.0.0/12, fd00:10:96::/108');
      const { nft, runner } = backend(
        list(ABSENT),
        list(ABSENT),
        write(renderReplaceTransaction(desired, PLAIN_LAYOUT)),
      );
      const plan = await nft.plan(desired);
      expect(plan.changes).toBe(true);
      expect(plan.commands).toHaveLength(1);
      expect(documentOf(plan.commands[0])).toEqual(renderReplaceTransaction(desired, PLAIN_LAYOUT));
      const result = await nft.apply(desired);
      expect(result).toEqual({ changed: true, writes: 1, summary: plan.summary });
      runner.assertDone();
      expect(runner.calls[2]).toEqual({ file: 'nft', args: plan.commands[0]?.args });
    });

    it('writes nothing when in sync', async () => {
      const { nft, runner } = backend(listing('applied-dual-stack-drop'), listing('applied-dual-stack-drop'));
      expect(await nft.plan(want(APPLIED))).toEqual({
        changes: false,
        commands: [],
        summary: 'in sync: nothing to change',
      });
      expect(await nft.apply(want(APPLIED))).toEqual({
        changed: false,
        writes: 0,
        summary: 'in sync: nothing to change',
      });
      runner.assertDone();
    });

    it('writes nothing for an empty state on a fresh node', async () => {
      const { nft, runner } = backend(list(ABSENT));
      expect(await nft.apply(want(''))).toMatchObject({ changed: false, writes: 0 });
      runner.assertDone();
    });

    it('changes only set elements when only CIDRs differ', async () => {
      const { nft, runner } = backend(listing('applied-dual-stack-drop'), anyWrite());
      const result = await nft.apply(want('10.96.0.0/16, 10.100.0.0/24, 10.0.0.1/32, fd00:10:96::/112'));
      expect(result).toMatchObject({ changed: true, writes: 1 });
      const sent = JSON.parse(runner.calls[1]?.args.slice(1).join(' ') ?? '') as NftDocument;
      expect(sent).toEqual({
        nftables: [
          {
            delete: {
              element: {
                family: 'inet',
                table: 'route-controller',
                name: 'service-cidrs-v6',
                elem: [{ prefix: { addr: 'fd00::1', len: 128 } }],
              },
            },
          },
        ],
      });
    });

    it('replaces the table from a half-made state', async () => {
      const desired = want('10.96.0.0/16');
      const { nft, runner } = backend(listing('half-made'), write(renderReplaceTransaction(desired, PLAIN_LAYOUT)));
      expect((await nft.apply(desired)).summary).toMatch(
        /^replace table inet route-controller \(chain forward has hook "input"/,
      );
      runner.assertDone();
    });

    it('removes the table for an empty state', async () => {
      const { nft, runner } = backend(listing('applied-v4-only-reject'), write(renderRemoveTransaction()));
      expect(await nft.apply(want(''))).toMatchObject({
        changed: true,
        writes: 1,
        summary: 'remove table inet route-controller',
      });
      runner.assertDone();
    });

    it('refuses an invalid desired state before running anything', async () => {
      const { nft, runner } = backend();
      const overlapping = ['10.96.0.0/12', '10.96.1.0/24'].map((text) => parseCidr(text).cidr);
      await expect(nft.apply({ action: 'drop', cidrs: { ipv4: overlapping, ipv6: [] } })).rejects.toMatchObject({
        code: ErrorCodes.InvalidDesiredState,
      });
      expect(runner.calls).toEqual([]);
    });

    it('refuses a family it is configured without, before running anything', async () => {
      const runner = new FakeCommandRunner();
      const nft = new NftBackend({ runner, families: ['ipv4'] });
      expect(nft.capabilities.families).toEqual(['ipv4']);
      await expect(nft.apply(want('fd00:10:96::/112'))).rejects.toMatchObject({
        code: ErrorCodes.FirewallUnsupported,
        hint: expect.any(String),
      });
      expect(runner.calls).toEqual([]);
    });

    it.each([
      ['internal:0:0-0: Error: Could not process rule: Operation not permitted\n\n', ErrorCodes.FirewallPermission],
      ['internal:0:0-0: Error: Could not process rule: File exists\n\n', ErrorCodes.FirewallExists],
      ['internal:0:0-0: Error: Could not process rule: No such file or directory\n\n', ErrorCodes.FirewallNotFound],
      ["internal:0:0-0: Error: Unknown statement object 'foo'.\n", ErrorCodes.FirewallSyntax],
      ['internal:0:0-0: Error: Could not process rule: Not supported\n', ErrorCodes.FirewallUnsupported],
      ['Error: something new\n', ErrorCodes.CommandFailed],
    ])('turns a refused write into a coded error that keeps stderr: %j', async (stderr, code) => {
      const { nft } = backend(list(ABSENT), anyWrite({ exitCode: 1, stderr }));
      const error = await nft.apply(want('10.96.0.0/16')).catch((e: unknown) => e);
      expect(error).toMatchObject({ code, hint: expect.any(String), details: { stderr, exitCode: 1 } });
    });

    it('uses a custom binary and table name everywhere', async () => {
      const runner = new FakeCommandRunner([
        { file: '/sbin/nft', args: ['-j', 'list', 'table', 'inet', 'rc-test'], result: ABSENT },
        {
          file: '/sbin/nft',
          args: (args) => {
            const document = JSON.parse(args.slice(1).join(' ')) as NftDocument;
            // Every object the transaction names lives in the table we were given.
            return document.nftables.every((command) =>
              Object.values(command).every((object: Record<string, { name?: string; table?: string }>) =>
                Object.entries(object).every(
                  ([kind, body]) => (kind === 'table' ? body.name : body.table) === 'rc-test',
                ),
              ),
            );
          },
        },
      ]);
      const nft = new NftBackend({ runner, nft: '/sbin/nft', tableName: 'rc-test' });
      await nft.apply(want('10.96.0.0/16'));
      runner.assertDone();
    });

    it.each(['filter', 'nat', 'mangle', 'raw', 'bad name', '', '-x'])('refuses the table name %j', (tableName) => {
      expect(() => new NftBackend({ runner: new FakeCommandRunner(), tableName })).toThrow(
        expect.objectContaining({ code: ErrorCodes.InvalidConfig }),
      );
    });
  });

  describe('cleanup', () => {
    it('removes nothing, writing nothing, when our table is absent', async () => {
      const { nft, runner } = backend(list(ABSENT));
      expect(await nft.cleanup()).toEqual({ removed: false, summary: 'no table inet route-controller to remove' });
      runner.assertDone();
    });

    it('deletes only our table when present', async () => {
      const { nft, runner } = backend(listing('half-made'), write(renderRemoveTransaction(DEFAULT_LAYOUT)));
      expect(await nft.cleanup()).toEqual({ removed: true, summary: 'removed table inet route-controller' });
      runner.assertDone();
    });

    it('removes a table it cannot parse', async () => {
      const { nft, runner } = backend(
        list({ stdout: '{"nftables": [{"metainfo": {"json_schema_version": 9}}]}' }),
        write(renderRemoveTransaction()),
      );
      expect((await nft.cleanup()).removed).toBe(true);
      runner.assertDone();
    });

    it('reports a refused delete as a coded error', async () => {
      const { nft } = backend(
        listing('half-made'),
        anyWrite({ exitCode: 1, stderr: 'internal:0:0-0: Error: Could not process rule: Operation not permitted\n' }),
      );
      await expect(nft.cleanup()).rejects.toMatchObject({ code: ErrorCodes.FirewallPermission });
    });
  });
});

describe('NftBackend with hit records (the default)', () => {
  const recording = (...script: ScriptStep[]) => {
    const runner = new FakeCommandRunner(script);
    return { nft: new NftBackend({ runner }), runner };
  };

  it('observes a table with records as in step, and writes nothing for it', async () => {
    const { nft, runner } = recording(listing('applied-records-hits'), listing('applied-records-hits'));
    expect((await nft.observe()).problems).toEqual([]);
    expect(await nft.apply(want(APPLIED))).toMatchObject({ changed: false, writes: 0 });
    runner.assertDone();
  });

  it('reads the records with one listing of our table, and none from an absent table', async () => {
    const { nft, runner } = recording(listing('applied-records-hits'), list(ABSENT));
    const records = await nft.records();
    expect(records.records).toHaveLength(6);
    expect(records.records[0]).toEqual({
      family: 'ipv4',
      source: '10.250.0.2',
      destination: '10.96.5.5',
      packets: 4,
      bytes: 336,
      lastSeenSecondsAgo: 2,
    });
    expect(await nft.records()).toEqual({ records: [], sets: [] });
    runner.assertDone();
  });

  it('rebuilds a plain table of an older version into the records layout, in one transaction', async () => {
    const desired = want(APPLIED);
    const { nft, runner } = recording(listing('applied-dual-stack-drop'), write(renderReplaceTransaction(desired)));
    expect(await nft.apply(desired)).toMatchObject({ changed: true, writes: 1 });
    runner.assertDone();
  });

  it('takes the bound and timeout from its options, and refuses unusable ones', () => {
    const runner = new FakeCommandRunner();
    const small = new NftBackend({ runner, records: { size: 8, timeoutSeconds: 2 } });
    expect(small.capabilities.records).toBe(true);
    for (const records of [{ size: 0 }, { size: 70_000 }, { timeoutSeconds: 1.5 }, { timeoutSeconds: -1 }]) {
      expect(() => new NftBackend({ runner, records })).toThrow(
        expect.objectContaining({ code: ErrorCodes.InvalidConfig, hint: expect.any(String) }),
      );
    }
  });

  it('turns records off after a probe finds nft 1.0.5: capabilities say so, and apply writes the plain layout', async () => {
    const desired = want('10.96.0.0/12');
    const { nft, runner } = recording(
      anyOrder(
        { file: 'nft', args: ['-V'], result: { stdout: 'nftables v1.0.5 (Lester Gooch #4)\n  json:\t\tyes\n' } },
        { file: 'nft', args: (args) => args[1] === '--check', result: {} },
      ),
      list(ABSENT),
      write(renderReplaceTransaction(desired, PLAIN_LAYOUT)),
    );
    const availability = await nft.probe();
    expect(availability.available).toBe(true);
    expect(availability.warnings).toEqual([expect.stringMatching(/^nft 1\.0\.5 is older than 1\.0\.6.*not recorded/)]);
    expect(nft.capabilities.records).toBe(false);
    expect(await nft.records()).toEqual({ records: [], sets: [] });
    await nft.apply(desired);
    runner.assertDone();
  });

  it('keeps records after a probe that finds them possible', async () => {
    const { nft } = recording(
      anyOrder(
        { file: 'nft', args: ['-V'], result: { stdout: 'nftables v1.0.6 (Lester Gooch #5)\n  json:\t\tyes\n' } },
        {
          file: 'nft',
          // The dry run covers the record sets too.
          args: (args) =>
            args[1] === '--check' &&
            isDeepStrictEqual(JSON.parse(args.slice(2).join(' ')), probeDocument(DEFAULT_LAYOUT)),
          result: {},
        },
      ),
    );
    expect((await nft.probe()).warnings).toEqual([]);
    expect(nft.capabilities.records).toBe(true);
  });
});
