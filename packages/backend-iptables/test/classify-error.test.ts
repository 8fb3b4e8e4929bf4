import { type ErrorCode, ErrorCodes } from '@route-controller/core';
import { describe, expect, it } from 'vitest';
import { classifyIptablesFailure, missingTable } from '../src/classify-error.js';
import { securityMissing } from './samples.js';

const PAYLOAD = `*filter
-D FORWARD -m comment --comment "route-controller: block forwarded traffic to Service CIDRs" -j ROUTE-CONTROLLER
-F ROUTE-CONTROLLER
-X ROUTE-CONTROLLER
COMMIT
`;

// stderr as iptables 1.8.9 prints it (captured in throwaway namespaces), and the code we expect.
const TABLE: readonly (readonly [string, string, number, string, ErrorCode])[] = [
  [
    'nft -S of a chain holding native nft rules',
    'iptables-nft',
    1,
    "iptables v1.8.9 (nf_tables): chain `FORWARD' in table `filter' is incompatible, use 'nft' tool.\n",
    ErrorCodes.FirewallUnreadable,
  ],
  [
    'nft, not root',
    'iptables-nft-restore',
    4,
    'iptables-nft-restore v1.8.9 (nf_tables): Could not fetch rule set generation id: Permission denied (you must be root)\n',
    ErrorCodes.FirewallPermission,
  ],
  [
    'legacy save, not root',
    'iptables-legacy-save',
    1,
    'iptables-save v1.8.9 (legacy): Cannot initialize: Permission denied (you must be root)\n',
    ErrorCodes.FirewallPermission,
  ],
  [
    'legacy restore, not root (the lock file)',
    'iptables-legacy-restore',
    4,
    "Fatal: can't open lock file /run/xtables.lock: Permission denied\n",
    ErrorCodes.FirewallPermission,
  ],
  [
    'legacy, lock held',
    'iptables-legacy-restore',
    4,
    "Can't lock /run/xtables.lock: Resource temporarily unavailable\nAnother app is currently holding the xtables lock. Stopped waiting after 5s.\n",
    ErrorCodes.CommandFailed,
  ],
  [
    'legacy, kernel without ip_tables',
    'iptables-legacy-save',
    1,
    'iptables-save v1.8.9 (legacy): Cannot initialize: Table does not exist (do you need to insmod?)\n',
    ErrorCodes.FirewallUnsupported,
  ],
  [
    'legacy restore, kernel without iptable_security (unable to initialize table)',
    'iptables-legacy-restore',
    2,
    securityMissing('ipv4').stderr ?? '',
    ErrorCodes.FirewallUnsupported,
  ],
  [
    'legacy CLI, kernel without iptable_security',
    'iptables-legacy',
    3,
    "iptables v1.8.9 (legacy): can't initialize iptables table `security': Table does not exist (do you need to insmod?)\nPerhaps iptables or your kernel needs to be upgraded.\n",
    ErrorCodes.FirewallUnsupported,
  ],
  [
    'nft, kernel without nf_tables',
    'iptables-nft-restore',
    1,
    'iptables-nft-restore v1.8.9 (nf_tables): Could not fetch rule set generation id: Protocol not supported\n',
    ErrorCodes.FirewallUnsupported,
  ],
  [
    'nft, -D of a rule that is gone',
    'iptables-nft-restore',
    1,
    'iptables-nft-restore: line 2 failed: Bad rule (does a matching rule exist in that chain?).\n',
    ErrorCodes.FirewallNotFound,
  ],
  [
    'nft, -X of a chain that is gone',
    'iptables-nft-restore',
    1,
    'iptables-nft-restore: line 4 failed: No chain/target/match by that name.\n',
    ErrorCodes.FirewallNotFound,
  ],
  [
    'nft, jump to a missing chain',
    'iptables-nft-restore',
    2,
    "iptables-nft-restore v1.8.9 (nf_tables): Chain 'NOPE-CHAIN' does not exist\nError occurred at line: 3\nTry `iptables-nft-restore -h' or 'iptables-nft-restore --help' for more information.\n",
    ErrorCodes.FirewallNotFound,
  ],
  [
    'legacy, jump to a missing chain',
    'iptables-legacy-restore',
    2,
    "iptables-restore v1.8.9 (legacy): Couldn't load target `NOPE-CHAIN':No such file or directory\n\nError occurred at line: 2\nTry `iptables-restore -h' or 'iptables-restore --help' for more information.\n",
    ErrorCodes.FirewallNotFound,
  ],
  [
    'nft, -X of a referenced chain',
    'iptables-nft-restore',
    4,
    'iptables-nft-restore v1.8.9 (nf_tables): \nline 4: CHAIN_DEL failed (Device or resource busy): chain ROUTE-CONTROLLER\n',
    ErrorCodes.CommandFailed,
  ],
  [
    'legacy, unknown option',
    'iptables-legacy-restore',
    2,
    "iptables-restore v1.8.9 (legacy): unknown option \"--bogus\"\nError occurred at line: 2\nTry `iptables-restore -h' or 'iptables-restore --help' for more information.\n",
    ErrorCodes.FirewallSyntax,
  ],
  [
    'nft, bad address',
    'iptables-nft-restore',
    2,
    "iptables-nft-restore v1.8.9 (nf_tables): host/network `10.300.0.0' not found\nError occurred at line: 2\n",
    ErrorCodes.FirewallSyntax,
  ],
  [
    'missing COMMIT',
    'iptables-legacy-restore',
    1,
    'iptables-restore: COMMIT expected at line 5\n',
    ErrorCodes.FirewallSyntax,
  ],
  [
    'legacy, bare "line 2 failed" on a -D line',
    'iptables-legacy-restore',
    1,
    'iptables-restore: line 2 failed\n',
    ErrorCodes.FirewallNotFound,
  ],
  [
    'legacy, bare "line 4 failed" on the -X line',
    'iptables-legacy-restore',
    1,
    'iptables-restore: line 4 failed\n',
    ErrorCodes.CommandFailed,
  ],
  ['unknown message, exit 2', 'iptables-nft-restore', 2, 'something new\n', ErrorCodes.FirewallSyntax],
  ['unknown message, exit 1', 'iptables-nft-restore', 1, 'something new\n', ErrorCodes.CommandFailed],
];

describe('classifyIptablesFailure', () => {
  it.each(TABLE)('%s => its code, a hint, stderr in details', (_name, file, exitCode, stderr, code) => {
    const error = classifyIptablesFailure({
      file,
      args: ['--noflush', '--counters', '-w', '5'],
      exitCode,
      stderr,
      input: PAYLOAD,
    });
    expect(error.code).toBe(code);
    expect(error.hint).toBeTruthy();
    expect(error.details.stderr).toBe(stderr);
    expect(error.details.exitCode).toBe(exitCode);
    expect(error.details.command).toBe(`${file} --noflush --counters -w 5`);
  });

  it('names the payload line a failure points at', () => {
    const error = classifyIptablesFailure({
      file: 'iptables-legacy-restore',
      args: [],
      exitCode: 1,
      stderr: 'iptables-restore: line 2 failed\n',
      input: PAYLOAD,
    });
    expect(error.details.line).toBe(2);
    expect(error.details.failedLine).toMatch(/^-D FORWARD /);
    expect(error.message).toMatch(/a rule we deleted by its spec no longer exists/);
  });

  it('the lock hint says what to do', () => {
    const error = classifyIptablesFailure({
      file: 'iptables-legacy-restore',
      args: [],
      exitCode: 4,
      stderr: 'Another app is currently holding the xtables lock. Stopped waiting after 1s.\n',
    });
    expect(error.hint).toMatch(/xtables lock/);
    expect(error.hint).toMatch(/lockWaitSeconds/);
  });

  it('names the table the kernel cannot make, and how to get it', () => {
    const error = classifyIptablesFailure({
      file: 'ip6tables-legacy-restore',
      args: [],
      exitCode: 2,
      stderr: securityMissing('ipv6').stderr ?? '',
    });
    expect(error.message).toMatch(/the kernel has no security table for this flavour/);
    expect(error.hint).toMatch(/iptable_security \(ip6table_security for IPv6\)/);
    expect(missingTable(securityMissing('ipv6').stderr ?? '')).toBe('security');
    expect(missingTable("can't initialize iptables table `security': Table does not exist")).toBe('security');
    expect(missingTable('iptables-restore: line 2 failed')).toBeUndefined();
  });

  it('carries extra context', () => {
    const error = classifyIptablesFailure(
      { file: 'ip6tables-nft-restore', args: [], exitCode: 1, stderr: 'x' },
      { family: 'ipv6', written: ['ipv4'] },
    );
    expect(error.details).toMatchObject({ family: 'ipv6', written: ['ipv4'] });
  });
});
