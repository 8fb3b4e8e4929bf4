import { ErrorCodes, type IpFamily } from '@route-controller/core';
import { FakeCommandRunner, type ScriptedCommand } from '@route-controller/core/testing';
import { describe, expect, it } from 'vitest';
import type { IptablesMode } from '../src/binaries.js';
import { parseIptablesVersion, probeIptables, probeReadArgs } from '../src/probe.js';
import { EMPTY_FILTER } from './samples.js';

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
 * Scripts one family: the three --version calls, then (when all three worked) the read.
 * `overrides` replaces the result of "iptables", "save", "restore" or "read".
 */
function family(
  mode: IptablesMode,
  fam: IpFamily,
  overrides: Partial<Record<Tool | 'read', Override>> = {},
  version?: string,
): ScriptedCommand[] {
  const script: ScriptedCommand[] = [];
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
    const result = read && typeof read === 'object' && !('code' in read) ? read : { stdout: EMPTY_FILTER };
    script.push({ file: bin(mode, fam, 'save'), args: probeReadArgs(mode), result });
  }
  return script;
}

async function probe(mode: IptablesMode, script: ScriptedCommand[]) {
  const runner = new FakeCommandRunner(script);
  const result = await probeIptables(runner, mode);
  runner.assertDone();
  return result;
}

describe('probeIptables', () => {
  it('reads with -save only: -t filter for nft (creates nothing), plain -save for legacy (-t would create it)', () => {
    expect(probeReadArgs('nft')).toEqual(['-t', 'filter']);
    expect(probeReadArgs('legacy')).toEqual([]);
  });

  for (const mode of ['legacy', 'nft'] as const) {
    it(`${mode}: all binaries and reads work => available for both families`, async () => {
      const result = await probe(mode, [...family(mode, 'ipv4'), ...family(mode, 'ipv6')]);
      expect(result.availability.available).toBe(true);
      expect(result.families).toEqual(['ipv4', 'ipv6']);
      expect(result.availability.warnings).toEqual([]);
      expect(result.availability.reason).toBe(
        `iptables-${mode} 1.8.9 (${mode === 'nft' ? 'nf_tables' : 'legacy'}): binaries present, filter table readable for IPv4 and IPv6`,
      );
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
      ]);
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
      "iptables-nft 1.8.9 (nf_tables) cannot be used: iptables-nft-save -t filter cannot show table ip filter in full: it printed \"# Table `filter' is incompatible, use 'nft' tool.\": the table holds rules written with nft that iptables-nft cannot translate",
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

  it('parses version lines', () => {
    expect(parseIptablesVersion('iptables v1.8.9 (nf_tables)')).toEqual({ version: '1.8.9', variant: 'nf_tables' });
    expect(parseIptablesVersion('iptables-save v1.8.9 (legacy)')).toEqual({ version: '1.8.9', variant: 'legacy' });
    expect(parseIptablesVersion('iptables v1.6.1')).toEqual({ version: '1.6.1', variant: undefined });
    expect(parseIptablesVersion('nope')).toBeUndefined();
  });
});
