import { ErrorCodes, isRouteControllerError } from '@route-controller/core';
import { anyOrder, codedRejection, desired, FakeCommandRunner, type ScriptStep } from '@route-controller/core/testing';
import { describe, expect, it } from 'vitest';
import { IptablesBackend } from '../src/iptables-backend.js';
import { probeReadArgs } from '../src/probe.js';
import {
  BUSY_NODE_FILTER,
  EMPTY_FILTER,
  filterSave,
  installedSave,
  JUMP,
  RULE,
  restoreWrite,
  saveRead,
} from './samples.js';

const FRESH_V4 = `*filter
:ROUTE-CONTROLLER - [0:0]
[0:0] -A ROUTE-CONTROLLER -d 10.96.0.0/16 -m comment --comment "route-controller: Service CIDR" -j DROP
-I FORWARD 1 -m comment --comment "route-controller: block forwarded traffic to Service CIDRs" -j ROUTE-CONTROLLER
COMMIT
`;
const FRESH_V6 = `*filter
:ROUTE-CONTROLLER - [0:0]
[0:0] -A ROUTE-CONTROLLER -d fd00:10:96::/112 -m comment --comment "route-controller: Service CIDR" -j DROP
-I FORWARD 1 -m comment --comment "route-controller: block forwarded traffic to Service CIDRs" -j ROUTE-CONTROLLER
COMMIT
`;

for (const mode of ['legacy', 'nft'] as const) {
  describe(`IptablesBackend (${mode}) with a scripted runner`, () => {
    const make = (script: ScriptStep[]) => {
      const runner = new FakeCommandRunner(script);
      return { runner, backend: new IptablesBackend({ mode, runner }) };
    };

    it(`is named iptables-${mode} and claims both families before a probe`, () => {
      const { backend } = make([]);
      expect(backend.name).toBe(`iptables-${mode}`);
      expect(backend.capabilities).toEqual({
        families: ['ipv4', 'ipv6'],
        actions: ['drop', 'reject'],
        counters: true,
        comments: true,
        events: mode === 'nft',
        records: false,
      });
    });

    it('fresh node: reads both families, then writes one restore transaction per family', async () => {
      const { runner, backend } = make([
        anyOrder(saveRead(mode, 'ipv4', EMPTY_FILTER), saveRead(mode, 'ipv6', '')),
        restoreWrite(mode, 'ipv4', FRESH_V4),
        restoreWrite(mode, 'ipv6', FRESH_V6),
      ]);
      const result = await backend.apply(desired(['10.96.0.0/16', 'fd00:10:96::/112']));
      runner.assertDone();
      expect(result).toMatchObject({ changed: true, writes: 2 });
      expect(result.summary).toMatch(/^ipv4: create chain ROUTE-CONTROLLER .*; ipv6: create chain/);
    });

    it('reads both families at once, not one after the other', async () => {
      // Each read answers only once both have been asked for: sequential reads would never finish.
      const asked = new Set<string>();
      let bothAsked: () => void = () => {};
      const ready = new Promise<void>((resolve) => {
        bothAsked = resolve;
      });
      const runner = {
        async run(request: { file: string }) {
          asked.add(request.file);
          if (asked.size === 2) bothAsked();
          await ready;
          return { exitCode: 0, stdout: EMPTY_FILTER, stderr: '' };
        },
      };
      const backend = new IptablesBackend({ mode, runner });
      const timeout = new Promise((_, reject) => setTimeout(() => reject(new Error('reads ran one at a time')), 2000));
      await expect(Promise.race([backend.observe(), timeout])).resolves.toMatchObject({ present: false });
      expect([...asked].sort()).toEqual([`ip6tables-${mode}-save`, `iptables-${mode}-save`]);
    });

    it('in sync: reads only', async () => {
      const { runner, backend } = make([
        anyOrder(
          saveRead(mode, 'ipv4', installedSave([RULE('10.96.0.0/16')])),
          saveRead(mode, 'ipv6', installedSave([RULE('fd00:10:96::/112')])),
        ),
      ]);
      const result = await backend.apply(desired(['10.96.0.0/16', 'fd00:10:96::/112']));
      runner.assertDone();
      expect(result).toEqual({ changed: false, writes: 0, summary: 'in sync: nothing to write' });
    });

    it('writes only the family that drifted', async () => {
      const { runner, backend } = make([
        anyOrder(saveRead(mode, 'ipv4', BUSY_NODE_FILTER), saveRead(mode, 'ipv6', EMPTY_FILTER)),
        // The chain already holds exactly these CIDRs: only the jumps are replaced.
        restoreWrite(mode, 'ipv4', `*filter\n-D FORWARD ${JUMP}\n-D FORWARD ${JUMP}\n-I FORWARD 1 ${JUMP}\nCOMMIT\n`),
      ]);
      const result = await backend.apply(desired(['10.1.0.0/16', '10.96.0.0/16']));
      runner.assertDone();
      expect(result.writes).toBe(1);
    });

    it('plan shows the exact commands apply runs, and none when in sync', async () => {
      const { runner, backend } = make([
        anyOrder(saveRead(mode, 'ipv4', EMPTY_FILTER), saveRead(mode, 'ipv6', EMPTY_FILTER)),
        anyOrder(saveRead(mode, 'ipv4', installedSave([RULE('10.96.0.0/16')])), saveRead(mode, 'ipv6', EMPTY_FILTER)),
      ]);
      const plan = await backend.plan(desired(['10.96.0.0/16']));
      expect(plan.changes).toBe(true);
      expect(plan.commands).toEqual([
        {
          file: `iptables-${mode}-restore`,
          args: ['--noflush', '--counters', '-w', '5'],
          input: FRESH_V4,
        },
      ]);
      const inSync = await backend.plan(desired(['10.96.0.0/16']));
      expect(inSync).toEqual({ changes: false, commands: [], summary: 'in sync: nothing to write' });
      runner.assertDone();
    });

    it('an empty desired state removes our objects', async () => {
      const { runner, backend } = make([
        anyOrder(saveRead(mode, 'ipv4', installedSave([RULE('10.96.0.0/16')])), saveRead(mode, 'ipv6', EMPTY_FILTER)),
        restoreWrite(mode, 'ipv4', `*filter\n-D FORWARD ${JUMP}\n-F ROUTE-CONTROLLER\n-X ROUTE-CONTROLLER\nCOMMIT\n`),
      ]);
      expect(await backend.apply(desired([]))).toMatchObject({ changed: true, writes: 1 });
      runner.assertDone();
    });

    it('observe reads our chain and sums counters per family', async () => {
      const { backend } = make([
        saveRead(mode, 'ipv4', BUSY_NODE_FILTER),
        saveRead(
          mode,
          'ipv6',
          filterSave({
            forward: [`[0:0] -A FORWARD ${JUMP}`],
            ours: [`[4:320] -A ROUTE-CONTROLLER ${RULE('fd00:10:96::/112')}`],
          }),
        ),
      ]);
      const observed = await backend.observe();
      expect(observed.present).toBe(true);
      expect(observed.action).toBe('drop');
      expect(observed.ipv4.counters).toEqual({ packets: 40, bytes: 2400 });
      expect(observed.ipv6.counters).toEqual({ packets: 4, bytes: 320 });
      expect(observed.ipv6.cidrs.map((c) => c.text)).toEqual(['fd00:10:96::/112']);
      expect(observed.problems).toEqual(['ipv4: 2 jumps to ROUTE-CONTROLLER in FORWARD (positions 2, 5)']);
    });

    it('cleanup removes jumps and chain per family, touching nothing else; then reports nothing removed', async () => {
      const { runner, backend } = make([
        anyOrder(saveRead(mode, 'ipv4', BUSY_NODE_FILTER), saveRead(mode, 'ipv6', filterSave({ ours: [] }))),
        restoreWrite(
          mode,
          'ipv4',
          `*filter\n-D FORWARD ${JUMP}\n-D FORWARD ${JUMP}\n-F ROUTE-CONTROLLER\n-X ROUTE-CONTROLLER\nCOMMIT\n`,
        ),
        restoreWrite(mode, 'ipv6', '*filter\n-F ROUTE-CONTROLLER\n-X ROUTE-CONTROLLER\nCOMMIT\n'),
        anyOrder(saveRead(mode, 'ipv4', EMPTY_FILTER), saveRead(mode, 'ipv6', EMPTY_FILTER)),
      ]);
      const first = await backend.cleanup();
      expect(first.removed).toBe(true);
      expect(first.summary).toBe(
        'ipv4: remove chain ROUTE-CONTROLLER; delete 2 jumps to it; ipv6: remove chain ROUTE-CONTROLLER',
      );
      expect(await backend.cleanup()).toEqual({ removed: false, summary: 'nothing of ours to remove' });
      runner.assertDone();
    });

    it('refuses an invalid desired state before running anything', async () => {
      const { runner, backend } = make([]);
      const bad = {
        action: 'drop' as const,
        cidrs: { ipv4: desired(['10.96.0.0/16', '10.97.0.0/16']).cidrs.ipv4.toReversed(), ipv6: [] },
      };
      const error = await codedRejection(backend.apply(bad));
      expect(error.code).toBe(ErrorCodes.InvalidDesiredState);
      expect(runner.calls).toEqual([]);
    });

    it('classifies a refused write, keeping stderr, and says which families were written', async () => {
      const stderr =
        mode === 'nft'
          ? 'ip6tables-nft-restore v1.8.9 (nf_tables): Could not fetch rule set generation id: Permission denied (you must be root)\n'
          : "Fatal: can't open lock file /run/xtables.lock: Permission denied\n";
      const { runner, backend } = make([
        anyOrder(saveRead(mode, 'ipv4', EMPTY_FILTER), saveRead(mode, 'ipv6', EMPTY_FILTER)),
        restoreWrite(mode, 'ipv4', FRESH_V4),
        restoreWrite(mode, 'ipv6', FRESH_V6, { exitCode: 4, stderr }),
      ]);
      const error = await codedRejection(backend.apply(desired(['10.96.0.0/16', 'fd00:10:96::/112'])));
      runner.assertDone();
      expect(error.code).toBe(ErrorCodes.FirewallPermission);
      expect(error.hint).toMatch(/root|CAP_NET_ADMIN/);
      expect(error.details).toMatchObject({ stderr, family: 'ipv6', written: ['ipv4'], exitCode: 4 });
    });

    it('classifies a failed read', async () => {
      const { backend } = make([
        anyOrder(
          saveRead(mode, 'ipv4', '', {
            exitCode: 1,
            stderr: 'iptables-save v1.8.9 (legacy): Cannot initialize: Table does not exist (do you need to insmod?)\n',
          }),
          saveRead(mode, 'ipv6', EMPTY_FILTER),
        ),
      ]);
      const error = await codedRejection(backend.observe());
      expect(error.code).toBe(ErrorCodes.FirewallUnsupported);
    });

    it('after a probe without ip6tables: IPv4 only, IPv6 never read, IPv6 CIDRs refused with nothing written', async () => {
      const versions = (family: 'ipv4' | 'ipv6'): ScriptStep[] => {
        const base = `${family === 'ipv4' ? 'iptables' : 'ip6tables'}-${mode}`;
        const variant = mode === 'nft' ? 'nf_tables' : 'legacy';
        return [
          { file: base, args: ['--version'], result: { stdout: `iptables v1.8.9 (${variant})\n` } },
          {
            file: `${base}-save`,
            args: ['--version'],
            ...(family === 'ipv6'
              ? { fails: 'missing' as const }
              : { result: { stdout: `iptables-save v1.8.9 (${variant})\n` } }),
          },
          {
            file: `${base}-restore`,
            args: ['--version'],
            result: { stdout: `iptables-restore v1.8.9 (${variant})\n` },
          },
        ];
      };
      const { runner, backend } = make([
        ...versions('ipv4'),
        { file: `iptables-${mode}-save`, args: probeReadArgs(mode), result: { stdout: EMPTY_FILTER } },
        ...versions('ipv6'),
        saveRead(mode, 'ipv4', EMPTY_FILTER),
        restoreWrite(mode, 'ipv4', FRESH_V4),
        saveRead(mode, 'ipv4', installedSave([RULE('10.96.0.0/16')])),
      ]);
      const availability = await backend.probe();
      expect(availability.available).toBe(true);
      expect(availability.warnings).toHaveLength(1);
      expect(backend.capabilities.families).toEqual(['ipv4']);
      expect(await backend.apply(desired(['10.96.0.0/16']))).toMatchObject({ writes: 1 });
      const refused = await codedRejection(backend.apply(desired(['10.96.0.0/16', 'fd00:10:96::/112'])));
      expect(refused.code).toBe(ErrorCodes.FirewallUnsupported);
      expect(refused.message).toMatch(new RegExp(`ip6tables-${mode}-save not found`));
      expect(refused.hint).toBeTruthy();
      const observed = await backend.observe();
      expect(observed.ipv6).toEqual({ cidrs: [] });
      runner.assertDone();
    });

    it('rejects bad options with ERR_RC_INVALID_CONFIG', () => {
      for (const options of [
        { mode: 'iptables' as unknown as 'nft' },
        { mode, chain: 'FORWARD' },
        { mode, chain: 'has space' },
        { mode, chain: 'X'.repeat(29) },
        { mode, lockWaitSeconds: 0 },
      ]) {
        let caught: unknown;
        try {
          new IptablesBackend(options);
        } catch (error) {
          caught = error;
        }
        expect(isRouteControllerError(caught, ErrorCodes.InvalidConfig), JSON.stringify(options)).toBe(true);
      }
    });

    it('uses a custom chain and lock wait', async () => {
      const runner = new FakeCommandRunner([
        anyOrder(saveRead(mode, 'ipv4', EMPTY_FILTER), saveRead(mode, 'ipv6', EMPTY_FILTER)),
        {
          file: `iptables-${mode}-restore`,
          args: ['--noflush', '--counters', '-w', '9'],
          input: (input) => !!input?.includes(':RC-TEST - [0:0]') && input.includes('-j RC-TEST\nCOMMIT'),
        },
      ]);
      const backend = new IptablesBackend({ mode, runner, chain: 'RC-TEST', lockWaitSeconds: 9 });
      await backend.apply(desired(['10.96.0.0/16']));
      runner.assertDone();
    });
  });

  describe(`IptablesBackend (${mode}) on a read that exits 0 but is not the whole table`, () => {
    const make = (script: ScriptStep[]) => {
      const runner = new FakeCommandRunner(script);
      return { runner, backend: new IptablesBackend({ mode, runner }) };
    };
    const INCOMPATIBLE = "# Table `filter' is incompatible, use 'nft' tool.\n";
    const BASE_CHAINS = `# Table \`filter' contains incompatible base-chains, use 'nft' tool to list them.\n${EMPTY_FILTER}`;
    const UNSUPPORTED_JUMP = filterSave({
      forward: [
        `-A FORWARD -m comment --comment "route-controller: block forwarded traffic to Service CIDRs" [unsupported revision] -j ROUTE-CONTROLLER`,
      ],
      ours: [`-A ROUTE-CONTROLLER ${RULE('10.96.0.0/16')}`],
    });
    const cases: [string, string, string][] = [
      ['the filter table is incompatible (native nft rules in it)', INCOMPATIBLE, ''],
      ['a base chain is left out', BASE_CHAINS, ''],
      ['our jump is printed with [unsupported revision]', UNSUPPORTED_JUMP, ''],
      [
        'a warning on stderr',
        installedSave([RULE('10.96.0.0/16')]),
        'Warning: Extension comment revision 0 not supported, missing kernel module?\n',
      ],
    ];
    for (const [what, stdout, stderr] of cases) {
      it(`${what}: observe, plan, apply and cleanup refuse with ERR_RC_FIREWALL_UNREADABLE and restore never runs`, async () => {
        const reads = () => anyOrder(saveRead(mode, 'ipv4', stdout, { stderr }), saveRead(mode, 'ipv6', EMPTY_FILTER));
        const { runner, backend } = make([reads(), reads(), reads(), reads()]);
        for (const call of [
          () => backend.observe(),
          () => backend.plan(desired(['10.96.0.0/16'])),
          () => backend.apply(desired(['10.96.0.0/16'])),
          () => backend.cleanup(),
        ]) {
          const error = await codedRejection(call());
          expect(error.code).toBe(ErrorCodes.FirewallUnreadable);
          expect(error.message).toMatch(/cannot show table ip filter in full/);
          expect(error.hint).toMatch(mode === 'nft' ? /FIREWALL_BACKEND=nft/ : /iptables-legacy-save/);
          expect(error.details).toMatchObject({ family: 'ipv4', reasons: [expect.any(String)] });
        }
        runner.assertDone();
      });
    }

    it('an unsupported revision outside FORWARD and our chain, and the legacy-tables warning, are harmless', async () => {
      const stdout = filterSave({
        forward: [`-A FORWARD ${JUMP}`],
        ours: [`-A ROUTE-CONTROLLER ${RULE('10.96.0.0/16')}`],
        extra: ['-A INPUT -m conntrack --ctstate NEW [unsupported revision] -j ACCEPT'],
      });
      const { backend } = make([
        anyOrder(
          saveRead(mode, 'ipv4', stdout, {
            stderr: '# Warning: iptables-legacy tables present, use iptables-legacy-save to see them\n',
          }),
          saveRead(mode, 'ipv6', EMPTY_FILTER, {
            stderr: '# Warning: ip6tables-legacy tables present, use ip6tables-legacy-save to see them\n',
          }),
        ),
      ]);
      const observed = await backend.observe();
      expect(observed.problems).toEqual([]);
      expect(observed.ipv4.cidrs.map((c) => c.text)).toEqual(['10.96.0.0/16']);
    });
  });
}
