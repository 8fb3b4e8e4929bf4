import { ErrorCodes, type IpFamily } from '@route-controller/core';
import { anyOrder, FakeCommandRunner, type ScriptedCommand, type ScriptStep } from '@route-controller/core/testing';
import { describe, expect, it } from 'vitest';
import type { IptablesMode } from '../src/binaries.js';
import { familyReadArgs } from '../src/family-read.js';
import { parseIptablesVersion, probeIptables } from '../src/probe.js';
import { type FamilyTables, fallbackSave, familyReads, RULE, securitySave } from './samples.js';

type Tool = 'iptables' | 'save' | 'restore';
type Override = ScriptedCommand['fails'] | { exitCode?: number; stdout?: string; stderr?: string };

const bin = (mode: IptablesMode, family: IpFamily, tool: Tool) => {
  const base = `${family === 'ipv4' ? 'iptables' : 'ip6tables'}-${mode}`;
  return tool === 'iptables' ? base : `${base}-${tool}`;
};

function versionText(mode: IptablesMode, family: IpFamily, tool: Tool, version = '1.8.9'): string {
  const name = family === 'ipv4' ? 'iptables' : 'ip6tables';
  const variant = mode === 'nft' ? 'nf_tables' : 'legacy';
  // As 1.8.9 prints them: legacy -save/-restore call themselves "iptables-save", nft ones "iptables-nft-save".
  const shown = tool === 'iptables' ? name : mode === 'nft' ? `${name}-nft-${tool}` : `${name}-${tool}`;
  return `${shown} v${version} (${variant})\n`;
}

/**
 * Scripts one family: the three --version calls, then (when all three worked) the reads: `tables`
 * is what they print; `read` replaces the result of the filter read (nft) or of the dump (legacy).
 */
function family(
  mode: IptablesMode,
  fam: IpFamily,
  overrides: Partial<Record<Tool | 'read', Override>> & { tables?: FamilyTables } = {},
  version?: string,
): ScriptStep[] {
  const script: ScriptStep[] = [];
  let allPresent = true;
  for (const tool of ['iptables', 'save', 'restore'] as const) {
    const file = bin(mode, fam, tool);
    const override = overrides[tool];
    if (override === 'missing' || override === 'timeout') {
      script.push({ file, args: ['--version'], fails: override });
      allPresent = false;
    } else if (override && typeof override === 'object' && !('code' in override)) {
      script.push({ file, args: ['--version'], result: override });
      if ((override.exitCode ?? 0) !== 0) allPresent = false;
    } else {
      script.push({ file, args: ['--version'], result: { stdout: versionText(mode, fam, tool, version) } });
    }
  }
  if (allPresent) {
    const read = overrides.read;
    const reads = familyReads(mode, fam, overrides.tables).map((command) =>
      read &&
      typeof read === 'object' &&
      !('code' in read) &&
      (mode === 'legacy' || (Array.isArray(command.args) && command.args.includes('filter')))
        ? { ...command, result: { exitCode: 0, stdout: '', stderr: '', ...read } }
        : command,
    );
    script.push(anyOrder(...reads));
  }
  return script;
}

async function probe(mode: IptablesMode, script: ScriptStep[]) {
  const runner = new FakeCommandRunner(script);
  const result = await probeIptables(runner, mode);
  runner.assertDone();
  return result;
}

describe('probeIptables', () => {
  it('reads with -save only: -t security and -t filter for nft (creates nothing), the plain dump for legacy (-t would create it)', () => {
    expect(familyReadArgs('nft')).toEqual([
      ['-c', '-t', 'security'],
      ['-c', '-t', 'filter'],
    ]);
    expect(familyReadArgs('legacy')).toEqual([['-c']]);
  });

  for (const mode of ['legacy', 'nft'] as const) {
    it(`${mode}: all binaries and reads work => available for both families`, async () => {
      const result = await probe(mode, [...family(mode, 'ipv4'), ...family(mode, 'ipv6')]);
      expect(result.availability.available).toBe(true);
      expect(result.families).toEqual(['ipv4', 'ipv6']);
      expect(result.availability.warnings).toEqual([]);
      expect(result.availability.reason).toBe(
        `iptables-${mode} 1.8.9 (${mode === 'nft' ? 'nf_tables' : 'legacy'}): binaries present, tables readable for IPv4 and IPv6`,
      );
      expect(result.placements).toEqual({ ipv4: 'security', ipv6: 'security' });
      expect(result.availability.checks.map((c) => [c.name, c.ok])).toEqual([
        [`binary iptables-${mode}`, true],
        [`binary iptables-${mode}-save`, true],
        [`binary iptables-${mode}-restore`, true],
        ['read ipv4', true],
        ['version', true],
        [`binary ip6tables-${mode}`, true],
        [`binary ip6tables-${mode}-save`, true],
        [`binary ip6tables-${mode}-restore`, true],
        ['read ipv6', true],
        ['placement', true],
      ]);
      const placement = result.availability.checks.at(-1)?.detail;
      expect(placement).toMatch(/^security table FORWARD \(after filter: kube-proxy's REJECT answers first\)/);
      // Only legacy can lack the table, found out at the first write.
      expect(placement?.includes('no iptable_security')).toBe(mode === 'legacy');
    });

    it(`${mode}: ip6tables binaries missing => IPv4 only, with a warning`, async () => {
      const result = await probe(mode, [...family(mode, 'ipv4'), ...family(mode, 'ipv6', { restore: 'missing' })]);
      expect(result.availability.available).toBe(true);
      expect(result.families).toEqual(['ipv4']);
      expect(result.availability.reason).toMatch(new RegExp(`IPv4 only \\(ip6tables-${mode}-restore not found\\)`));
      expect(result.availability.warnings).toEqual([
        `IPv6 Service CIDRs cannot be enforced with iptables-${mode}: ip6tables-${mode}-restore not found`,
      ]);
      expect(result.ipv6Limitation).toBe(`ip6tables-${mode}-restore not found`);
    });

    it(`${mode}: an IPv4 binary missing => unavailable`, async () => {
      const result = await probe(mode, [...family(mode, 'ipv4', { save: 'missing' }), ...family(mode, 'ipv6')]);
      expect(result.availability.available).toBe(false);
      expect(result.availability.reason).toMatch(new RegExp(`cannot be used: iptables-${mode}-save not found`));
      expect(result.availability.failure).toBe(ErrorCodes.CommandNotFound);
      expect(result.availability.checks.find((c) => c.name === 'read ipv4')).toBeUndefined();
    });
  }

  it('a read failure (not root) => unavailable, with the classified message', async () => {
    const denied = {
      exitCode: 4,
      stderr:
        'iptables-nft-save v1.8.9 (nf_tables): Could not fetch rule set generation id: Permission denied (you must be root)\n',
    };
    const result = await probe('nft', [
      ...family('nft', 'ipv4', { read: denied }),
      ...family('nft', 'ipv6', { read: denied }),
    ]);
    expect(result.availability.available).toBe(false);
    expect(result.availability.reason).toMatch(/permission denied/);
    expect(result.availability.checks.find((c) => c.name === 'read ipv4')?.ok).toBe(false);
    expect(result.availability.failure).toBe(ErrorCodes.FirewallPermission);
  });

  it('an IPv6 read failure alone (no ip6 tables in the kernel) => IPv4 only', async () => {
    const result = await probe('legacy', [
      ...family('legacy', 'ipv4'),
      ...family('legacy', 'ipv6', {
        read: {
          exitCode: 1,
          stderr: 'ip6tables-save v1.8.9 (legacy): Cannot initialize: Address family not supported by protocol\n',
        },
      }),
    ]);
    expect(result.availability.available).toBe(true);
    expect(result.families).toEqual(['ipv4']);
    expect(result.availability.warnings[0]).toMatch(/IPv6 Service CIDRs cannot be enforced/);
  });

  it('a filter table iptables-nft cannot read (exit 0, one comment line) => unavailable, naming the cause', async () => {
    const incompatible = { stdout: "# Table `filter' is incompatible, use 'nft' tool.\n" };
    const result = await probe('nft', [...family('nft', 'ipv4', { read: incompatible }), ...family('nft', 'ipv6')]);
    expect(result.availability.available).toBe(false);
    expect(result.availability.failure).toBe(ErrorCodes.FirewallUnreadable);
    expect(result.availability.reason).toBe(
      "iptables-nft 1.8.9 (nf_tables) cannot be used: iptables-nft-save -c -t filter cannot show table ip filter in full: it printed \"# Table `filter' is incompatible, use 'nft' tool.\": the table holds rules written with nft that iptables-nft cannot translate",
    );
    expect(result.availability.checks.find((c) => c.name === 'read ipv4')?.ok).toBe(false);
  });

  it('an unreadable ip6 filter alone => unavailable too, not IPv4 only', async () => {
    const incompatible = { stdout: "# Table `filter' is incompatible, use 'nft' tool.\n" };
    const result = await probe('nft', [...family('nft', 'ipv4'), ...family('nft', 'ipv6', { read: incompatible })]);
    expect(result.availability.available).toBe(false);
    expect(result.availability.failure).toBe(ErrorCodes.FirewallUnreadable);
    expect(result.availability.reason).toMatch(/cannot show table ip6 filter in full/);
    expect(result.families).toEqual([]);
  });

  it('unparsable -save output fails the read check', async () => {
    const result = await probe('nft', [
      ...family('nft', 'ipv4', { read: { stdout: 'garbage\n' } }),
      ...family('nft', 'ipv6'),
    ]);
    expect(result.availability.available).toBe(false);
    expect(result.availability.checks.find((c) => c.name === 'read ipv4')?.detail).toMatch(/cannot parse/);
  });

  it('refuses iptables-nft older than 1.8.4', async () => {
    const result = await probe('nft', [...family('nft', 'ipv4', {}, '1.8.2'), ...family('nft', 'ipv6', {}, '1.8.2')]);
    expect(result.availability.available).toBe(false);
    expect(result.availability.checks.find((c) => c.name === 'version')).toMatchObject({ ok: false });
    expect(result.availability.reason).toMatch(/older than 1\.8\.4/);
  });

  it('refuses a binary of the wrong variant (iptables-nft that is really legacy)', async () => {
    const wrong = { stdout: 'iptables v1.8.9 (legacy)\n' };
    const result = await probe('nft', [...family('nft', 'ipv4', { iptables: wrong }), ...family('nft', 'ipv6')]);
    expect(result.availability.available).toBe(false);
    expect(result.availability.reason).toMatch(/not the nf_tables variant/);
  });

  it('legacy: our fallback jump and no security table => filter placement for that family, with the warning', async () => {
    const fallback = { tables: { filter: fallbackSave([RULE('10.96.0.0/16')]) } };
    const result = await probe('legacy', [...family('legacy', 'ipv4', fallback), ...family('legacy', 'ipv6')]);
    expect(result.availability.available).toBe(true);
    expect(result.placements).toEqual({ ipv4: 'filter', ipv6: 'security' });
    expect(result.availability.checks.find((c) => c.name === 'placement')?.detail).toMatch(
      /^ipv4: filter FORWARD position 1 \(fallback: the kernel has no security table for iptables-legacy\); ipv6: security table FORWARD/,
    );
    expect(result.availability.warnings).toEqual([
      expect.stringMatching(
        /^the kernel has no ipv4 security table .* a connection to a Service with no endpoints hangs/,
      ),
    ]);
  });

  it('legacy: our filter jump to reject rules says nothing of the kernel (reject always lives in filter)', async () => {
    const reject = {
      tables: { filter: fallbackSave([RULE('10.96.0.0/16', '-j REJECT --reject-with icmp-admin-prohibited')]) },
    };
    const result = await probe('legacy', [...family('legacy', 'ipv4', reject), ...family('legacy', 'ipv6')]);
    expect(result.placements).toEqual({ ipv4: 'security', ipv6: 'security' });
    expect(result.availability.warnings).toEqual([]);
    expect(result.availability.checks.find((c) => c.name === 'placement')?.detail).toMatch(
      /with BLOCK_ACTION=reject: filter FORWARD position 1 \(REJECT works in filter only\)$/,
    );
  });

  it('legacy: our fallback jump beside an existing security table => security placement (the kernel has it now)', async () => {
    const both = { tables: { security: securitySave({}), filter: fallbackSave([RULE('10.96.0.0/16')]) } };
    const result = await probe('legacy', [...family('legacy', 'ipv4', both), ...family('legacy', 'ipv6', both)]);
    expect(result.placements).toEqual({ ipv4: 'security', ipv6: 'security' });
    expect(result.availability.warnings).toEqual([]);
  });

  it('parses version lines', () => {
    expect(parseIptablesVersion('iptables v1.8.9 (nf_tables)')).toEqual({ version: '1.8.9', variant: 'nf_tables' });
    expect(parseIptablesVersion('iptables-save v1.8.9 (legacy)')).toEqual({ version: '1.8.9', variant: 'legacy' });
    expect(parseIptablesVersion('iptables v1.6.1')).toEqual({ version: '1.6.1', variant: undefined });
    expect(parseIptablesVersion('nope')).toBeUndefined();
  });
});
