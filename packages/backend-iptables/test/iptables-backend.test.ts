import { ErrorCodes, isRouteControllerError } from '@route-controller/core';
import { anyOrder, codedRejection, desired, FakeCommandRunner, type ScriptStep } from '@route-controller/core/testing';
import { describe, expect, it } from 'vitest';
import { IptablesBackend } from '../src/iptables-backend.js';
import {
  BUSY_NODE_FILTER,
  BUSY_NODE_SECURITY,
  EMPTY_FILTER,
  FALLBACK_JUMP,
  type FamilyTables,
  fallbackSave,
  familyReads,
  installedSave,
  JUMP,
  oldLayoutSave,
  RULE,
  restoreWrite,
  securityMissing,
  securitySave,
} from './samples.js';

const EMPTY_SECURITY_TABLE = securitySave({});

const FRESH_V4 = `*security
:ROUTE-CONTROLLER - [0:0]
[0:0] -A ROUTE-CONTROLLER -d 10.96.0.0/16 -m comment --comment "route-controller: Service CIDR" -j DROP
-I FORWARD 1 -m comment --comment "route-controller: block forwarded traffic to Service CIDRs" -j ROUTE-CONTROLLER
COMMIT
`;
const FRESH_V6 = `*security
:ROUTE-CONTROLLER - [0:0]
[0:0] -A ROUTE-CONTROLLER -d fd00:10:96::/112 -m comment --comment "route-controller: Service CIDR" -j DROP
-I FORWARD 1 -m comment --comment "route-controller: block forwarded traffic to Service CIDRs" -j ROUTE-CONTROLLER
COMMIT
`;

for (const mode of ['legacy', 'nft'] as const) {
  /** Both families' reads, in any order: nft reads two tables per family, legacy one dump. */
  const reads = (ipv4: FamilyTables = {}, ipv6: FamilyTables = {}) =>
    anyOrder(...familyReads(mode, 'ipv4', ipv4), ...familyReads(mode, 'ipv6', ipv6));

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
        reads(),
        restoreWrite(mode, 'ipv4', FRESH_V4),
        restoreWrite(mode, 'ipv6', FRESH_V6),
      ]);
      const result = await backend.apply(desired(['10.96.0.0/16', 'fd00:10:96::/112']));
      runner.assertDone();
      expect(result).toMatchObject({ changed: true, writes: 2 });
      expect(result.summary).toMatch(/^ipv4: create chain ROUTE-CONTROLLER in security .*; ipv6: create chain/);
      expect(result.warnings).toBeUndefined();
    });

    it("upgrade from 0.1.0: observe calls filter's chain drift; one restore per family installs in security, then removes it, carrying the counters", async () => {
      const old = (cidr: string) => ({ filter: oldLayoutSave([`[3:180] ${RULE(cidr)}`]) });
      const upgrade = (cidr: string) => (input: string | undefined) =>
        new RegExp(
          `^\\*security\\n:ROUTE-CONTROLLER - \\[0:0\\]\\n\\[3:180\\] -A ROUTE-CONTROLLER -d ${cidr.replaceAll('.', '\\.')} [^*]*\\nCOMMIT\\n\\*filter\\n-D FORWARD ${JUMP.replace(/[^\w ]/g, '.')}\\n-F ROUTE-CONTROLLER\\n-X ROUTE-CONTROLLER\\nCOMMIT\\n$`,
        ).test(input ?? '');
      const { runner, backend } = make([
        reads(old('10.96.0.0/16'), old('fd00:10:96::/112')),
        reads(old('10.96.0.0/16'), old('fd00:10:96::/112')),
        restoreWrite(mode, 'ipv4', upgrade('10.96.0.0/16')),
        restoreWrite(mode, 'ipv6', upgrade('fd00:10:96::/112')),
      ]);
      const before = await backend.observe();
      expect(before.problems).toEqual([
        expect.stringMatching(/^ipv4: .* in table filter: route-controller 0\.1\.0's layout/),
        expect.stringMatching(/^ipv6: .* in table filter: route-controller 0\.1\.0's layout/),
      ]);
      const result = await backend.apply(desired(['10.96.0.0/16', 'fd00:10:96::/112']));
      runner.assertDone();
      expect(result).toMatchObject({ changed: true, writes: 2 });
      expect(result.summary).toContain("remove chain ROUTE-CONTROLLER from filter (route-controller 0.1.0's)");
    });

    it('reject: the chain and its jump go to filter FORWARD, where the REJECT target works', async () => {
      const { runner, backend } = make([
        reads(),
        restoreWrite(mode, 'ipv4', (input) =>
          /^\*filter\n:ROUTE-CONTROLLER - \[0:0\]\n.* -j REJECT --reject-with icmp-admin-prohibited\n-I FORWARD 1 .*\(filter\)" -j ROUTE-CONTROLLER\nCOMMIT\n$/.test(
            input ?? '',
          ),
        ),
        reads({ filter: fallbackSave([RULE('10.96.0.0/16', '-j REJECT --reject-with icmp-admin-prohibited')]) }),
      ]);
      expect((await backend.apply(desired(['10.96.0.0/16'], 'reject'))).writes).toBe(1);
      expect(await backend.observe()).toMatchObject({ action: 'reject', problems: [] });
      runner.assertDone();
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
          return { exitCode: 0, stdout: mode === 'nft' ? EMPTY_FILTER : '', stderr: '' };
        },
      };
      const backend = new IptablesBackend({ mode, runner });
      const timeout = new Promise((_, reject) => setTimeout(() => reject(new Error('reads ran one at a time')), 2000));
      await expect(Promise.race([backend.observe(), timeout])).resolves.toMatchObject({ present: false });
      expect([...asked].sort()).toEqual([`ip6tables-${mode}-save`, `iptables-${mode}-save`]);
    });

    it('in sync: reads only', async () => {
      const { runner, backend } = make([
        reads(
          { security: installedSave([RULE('10.96.0.0/16')]) },
          { security: installedSave([RULE('fd00:10:96::/112')]) },
        ),
      ]);
      const result = await backend.apply(desired(['10.96.0.0/16', 'fd00:10:96::/112']));
      runner.assertDone();
      expect(result).toEqual({ changed: false, writes: 0, summary: 'in sync: nothing to write' });
    });

    it('writes only the family that drifted', async () => {
      const { runner, backend } = make([
        reads({ security: BUSY_NODE_SECURITY }),
        // The chain already holds exactly these CIDRs: only the jumps are replaced.
        restoreWrite(mode, 'ipv4', `*security\n-D FORWARD ${JUMP}\n-D FORWARD ${JUMP}\n-I FORWARD 1 ${JUMP}\nCOMMIT\n`),
      ]);
      const result = await backend.apply(desired(['10.1.0.0/16', '10.96.0.0/16']));
      runner.assertDone();
      expect(result.writes).toBe(1);
    });

    it('plan shows the exact commands apply runs, and none when in sync', async () => {
      const { runner, backend } = make([reads(), reads({ security: installedSave([RULE('10.96.0.0/16')]) })]);
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
        reads({ security: installedSave([RULE('10.96.0.0/16')]) }),
        restoreWrite(mode, 'ipv4', `*security\n-D FORWARD ${JUMP}\n-F ROUTE-CONTROLLER\n-X ROUTE-CONTROLLER\nCOMMIT\n`),
      ]);
      expect(await backend.apply(desired([]))).toMatchObject({ changed: true, writes: 1 });
      runner.assertDone();
    });

    it('observe reads our chain and sums counters per family', async () => {
      const { backend } = make([
        reads(
          { security: BUSY_NODE_SECURITY },
          {
            security: securitySave({
              forward: [`[0:0] -A FORWARD ${JUMP}`],
              ours: [`[4:320] -A ROUTE-CONTROLLER ${RULE('fd00:10:96::/112')}`],
            }),
          },
        ),
      ]);
      const observed = await backend.observe();
      expect(observed.present).toBe(true);
      expect(observed.action).toBe('drop');
      expect(observed.ipv4.counters).toEqual({ packets: 40, bytes: 2400 });
      expect(observed.ipv6.counters).toEqual({ packets: 4, bytes: 320 });
      expect(observed.ipv6.cidrs.map((c) => c.text)).toEqual(['fd00:10:96::/112']);
      expect(observed.problems).toEqual(['ipv4: 2 jumps to ROUTE-CONTROLLER in security FORWARD (positions 2, 4)']);
    });

    it('cleanup removes jumps and chain per family from both tables (0.1.0 and fallback leftovers too), touching nothing else; then reports nothing removed', async () => {
      const { runner, backend } = make([
        reads({ security: BUSY_NODE_SECURITY, filter: BUSY_NODE_FILTER }, { filter: fallbackSave([]) }),
        restoreWrite(
          mode,
          'ipv4',
          `*security\n-D FORWARD ${JUMP}\n-D FORWARD ${JUMP}\n-F ROUTE-CONTROLLER\n-X ROUTE-CONTROLLER\nCOMMIT\n*filter\n-D FORWARD ${JUMP}\n-D FORWARD ${JUMP}\n-F ROUTE-CONTROLLER\n-X ROUTE-CONTROLLER\nCOMMIT\n`,
        ),
        restoreWrite(
          mode,
          'ipv6',
          `*filter\n-D FORWARD ${FALLBACK_JUMP}\n-F ROUTE-CONTROLLER\n-X ROUTE-CONTROLLER\nCOMMIT\n`,
        ),
        reads(),
      ]);
      const first = await backend.cleanup();
      expect(first.removed).toBe(true);
      expect(first.summary).toBe(
        "ipv4: remove chain ROUTE-CONTROLLER from security; delete 2 jumps to it from security; remove chain ROUTE-CONTROLLER from filter (route-controller 0.1.0's); delete 2 jumps to it from filter; ipv6: remove chain ROUTE-CONTROLLER from filter; delete 1 jump to it from filter",
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
        reads(),
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
      const failed = {
        exitCode: 1,
        stderr: 'iptables-save v1.8.9 (legacy): Cannot initialize: Table does not exist (do you need to insmod?)\n',
      };
      const { backend } = make([anyOrder(...familyReads(mode, 'ipv4', {}, failed), ...familyReads(mode, 'ipv6'))]);
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
        anyOrder(...familyReads(mode, 'ipv4')),
        ...versions('ipv6'),
        anyOrder(...familyReads(mode, 'ipv4')),
        restoreWrite(mode, 'ipv4', FRESH_V4),
        anyOrder(...familyReads(mode, 'ipv4', { security: installedSave([RULE('10.96.0.0/16')]) })),
      ]);
      const availability = await backend.probe();
      expect(availability.available).toBe(true);
      expect(availability.warnings).toEqual([expect.stringMatching(/^IPv6 Service CIDRs cannot be enforced/)]);
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
        reads(),
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

  describe(`IptablesBackend (${mode}) where the kernel cannot make the security table`, () => {
    const make = (script: ScriptStep[]) => {
      const runner = new FakeCommandRunner(script);
      return { runner, backend: new IptablesBackend({ mode, runner }) };
    };
    /** The probe's commands for one family: three --version runs, then its reads. */
    const probed = (family: 'ipv4' | 'ipv6', tables: FamilyTables = {}): ScriptStep[] => {
      const base = `${family === 'ipv4' ? 'iptables' : 'ip6tables'}-${mode}`;
      const variant = mode === 'nft' ? 'nf_tables' : 'legacy';
      return [
        ...['', '-save', '-restore'].map((tool) => ({
          file: `${base}${tool}`,
          args: ['--version'],
          result: { stdout: `iptables${tool} v1.8.9 (${variant})\n` },
        })),
        anyOrder(...familyReads(mode, family, tables)),
      ];
    };
    const FALLBACK_V4 = `*filter\n:ROUTE-CONTROLLER - [0:0]\n[0:0] -A ROUTE-CONTROLLER ${RULE('10.96.0.0/16')}\n-I FORWARD 1 ${FALLBACK_JUMP}\nCOMMIT\n`;
    const installedFallback = { filter: fallbackSave([RULE('10.96.0.0/16')]) };

    it('a fresh install falls back to filter FORWARD in the same apply, with one warning naming the endpoint-less caveat', async () => {
      const { runner, backend } = make([
        reads(),
        restoreWrite(mode, 'ipv4', FRESH_V4, securityMissing('ipv4')),
        reads(),
        restoreWrite(mode, 'ipv4', FALLBACK_V4),
        reads(installedFallback),
        reads(installedFallback),
      ]);
      const result = await backend.apply(desired(['10.96.0.0/16']));
      expect(result).toMatchObject({ changed: true, writes: 1 });
      expect(result.summary).toContain('insert the jump at position 1 of filter FORWARD');
      expect(result.warnings).toEqual([expect.stringMatching(/no iptable_security.*Service with no endpoints hangs/)]);
      // From now on the fallback is where our objects belong: in sync, no drift, no second warning.
      expect(await backend.apply(desired(['10.96.0.0/16']))).toEqual({
        changed: false,
        writes: 0,
        summary: 'in sync: nothing to write',
      });
      expect((await backend.observe()).problems).toEqual([]);
      runner.assertDone();
    });

    it('falls back per family: IPv4 in security, IPv6 in filter', async () => {
      const { runner, backend } = make([
        reads(),
        restoreWrite(mode, 'ipv4', FRESH_V4),
        restoreWrite(mode, 'ipv6', FRESH_V6, securityMissing('ipv6')),
        reads({ security: installedSave([RULE('10.96.0.0/16')]) }),
        restoreWrite(mode, 'ipv6', (input) => input?.startsWith('*filter\n:ROUTE-CONTROLLER') === true),
      ]);
      const result = await backend.apply(desired(['10.96.0.0/16', 'fd00:10:96::/112']));
      runner.assertDone();
      expect(result.warnings).toEqual([
        expect.stringMatching(/^the kernel has no ipv6 security table .*ip6table_security/),
      ]);
    });

    it('another failure of the security write is no fallback: it is thrown, and nothing else is written', async () => {
      const { runner, backend } = make([
        reads(),
        restoreWrite(mode, 'ipv4', FRESH_V4, {
          exitCode: 4,
          stderr: "Fatal: can't open lock file /run/xtables.lock: Permission denied\n",
        }),
      ]);
      const error = await codedRejection(backend.apply(desired(['10.96.0.0/16'])));
      expect(error.code).toBe(ErrorCodes.FirewallPermission);
      runner.assertDone();
    });

    it('a probe that finds our fallback jump reports the placement and the warning; apply tries security once, quietly', async () => {
      const { runner, backend } = make([
        ...probed('ipv4', installedFallback),
        ...probed('ipv6'),
        ...(mode === 'nft' ? [] : [reads(installedFallback)]),
        // The retry: the security write is refused again, and the fallback already in place stays.
        reads(installedFallback),
        restoreWrite(mode, 'ipv4', (input) => input?.startsWith('*security\n') === true, securityMissing('ipv4')),
        reads(installedFallback),
        // Later applies do not try again.
        reads(installedFallback),
      ]);
      const availability = await backend.probe();
      const placement = availability.checks.find((check) => check.name === 'placement');
      if (mode === 'legacy') {
        expect(placement?.detail).toMatch(
          /^ipv4: filter FORWARD position 1 \(fallback: .*\); ipv6: security table FORWARD/,
        );
        expect(availability.warnings).toEqual([
          expect.stringMatching(/ipv4 rules sit at position 1 of filter FORWARD/),
        ]);
        expect((await backend.observe()).problems).toEqual([]);
        expect(await backend.apply(desired(['10.96.0.0/16']))).toEqual({
          changed: false,
          writes: 0,
          summary: 'in sync: nothing to write',
        });
        expect((await backend.apply(desired(['10.96.0.0/16']))).changed).toBe(false);
        runner.assertDone();
      } else {
        // iptables-nft always has the security table: a fallback jump there is drift like any other.
        expect(placement?.detail).toMatch(/^security table FORWARD \(after filter/);
        expect(availability.warnings).toEqual([]);
        expect((await backend.observe()).problems).toEqual([
          expect.stringMatching(/^ipv4: .* in table filter: filter FORWARD, though the security table can be used/),
        ]);
      }
    });

    if (mode === 'legacy') {
      it('a probe that finds the security table beside our fallback jump moves the rules there', async () => {
        const { runner, backend } = make([
          ...probed('ipv4', { security: EMPTY_SECURITY_TABLE, ...installedFallback }),
          ...probed('ipv6'),
          reads({ security: EMPTY_SECURITY_TABLE, ...installedFallback }),
          restoreWrite(
            mode,
            'ipv4',
            (input) =>
              input?.startsWith('*security\n') === true && input.includes(`*filter\n-D FORWARD ${FALLBACK_JUMP}`),
          ),
        ]);
        const availability = await backend.probe();
        expect(availability.warnings).toEqual([]);
        expect((await backend.apply(desired(['10.96.0.0/16']))).warnings).toBeUndefined();
        runner.assertDone();
      });
    }
  });

  describe(`IptablesBackend (${mode}) on a read that exits 0 but is not the whole table`, () => {
    const make = (script: ScriptStep[]) => {
      const runner = new FakeCommandRunner(script);
      return { runner, backend: new IptablesBackend({ mode, runner }) };
    };
    const INCOMPATIBLE = (table: string) => `# Table \`${table}' is incompatible, use 'nft' tool.\n`;
    const BASE_CHAINS = `# Table \`filter' contains incompatible base-chains, use 'nft' tool to list them.\n${EMPTY_FILTER}`;
    const UNSUPPORTED_JUMP = securitySave({
      forward: [
        `-A FORWARD -m comment --comment "route-controller: block forwarded traffic to Service CIDRs" [unsupported revision] -j ROUTE-CONTROLLER`,
      ],
      ours: [`-A ROUTE-CONTROLLER ${RULE('10.96.0.0/16')}`],
    });
    // What the IPv4 reads print, the stderr of each, and the table the message names (nft reads one per run).
    const cases: [string, FamilyTables, string, string][] = [
      ['the filter table is incompatible (native nft rules in it)', { filter: INCOMPATIBLE('filter') }, '', 'filter'],
      ['the security table is incompatible', { security: INCOMPATIBLE('security') }, '', 'security'],
      ['a base chain is left out', { filter: BASE_CHAINS }, '', 'filter'],
      ['our jump is printed with [unsupported revision]', { security: UNSUPPORTED_JUMP }, '', 'security'],
      [
        "0.1.0's jump is printed with [unsupported revision]",
        { filter: UNSUPPORTED_JUMP.replace('*security', '*filter') },
        '',
        'filter',
      ],
      [
        'a warning on stderr',
        { security: installedSave([RULE('10.96.0.0/16')]) },
        'Warning: Extension comment revision 0 not supported, missing kernel module?\n',
        '(security|filter)',
      ],
    ];
    for (const [what, tables, stderr, table] of cases) {
      it(`${what}: observe, plan, apply and cleanup refuse with ERR_RC_FIREWALL_UNREADABLE and restore never runs`, async () => {
        const reads = () => anyOrder(...familyReads(mode, 'ipv4', tables, { stderr }), ...familyReads(mode, 'ipv6'));
        const { runner, backend } = make([reads(), reads(), reads(), reads()]);
        for (const call of [
          () => backend.observe(),
          () => backend.plan(desired(['10.96.0.0/16'])),
          () => backend.apply(desired(['10.96.0.0/16'])),
          () => backend.cleanup(),
        ]) {
          const error = await codedRejection(call());
          expect(error.code).toBe(ErrorCodes.FirewallUnreadable);
          expect(error.message).toMatch(
            mode === 'nft' ? new RegExp(`cannot show table ip ${table} in full`) : /cannot show the ip tables in full/,
          );
          expect(error.hint).toMatch(mode === 'nft' ? /FIREWALL_BACKEND=nft/ : /iptables-legacy-save/);
          expect(error.details).toMatchObject({ family: 'ipv4', reasons: [expect.any(String)] });
        }
        runner.assertDone();
      });
    }

    it('an unsupported revision outside FORWARD and our chain, and the legacy-tables warning, are harmless', async () => {
      const security = securitySave({
        forward: [`-A FORWARD ${JUMP}`],
        ours: [`-A ROUTE-CONTROLLER ${RULE('10.96.0.0/16')}`],
        extra: ['-A INPUT -m conntrack --ctstate NEW [unsupported revision] -j ACCEPT'],
      });
      const warned = (family: 'ipv4' | 'ipv6') => ({
        stderr: `# Warning: ${family === 'ipv4' ? 'iptables' : 'ip6tables'}-legacy tables present, use ${family === 'ipv4' ? 'iptables' : 'ip6tables'}-legacy-save to see them\n`,
      });
      const { backend } = make([
        anyOrder(
          ...familyReads(mode, 'ipv4', { security }, warned('ipv4')),
          ...familyReads(mode, 'ipv6', {}, warned('ipv6')),
        ),
      ]);
      const observed = await backend.observe();
      expect(observed.problems).toEqual([]);
      expect(observed.ipv4.cidrs.map((c) => c.text)).toEqual(['10.96.0.0/16']);
    });
  });
}
