import {
  type Availability,
  type CommandRunner,
  type ErrorCode,
  ErrorCodes,
  errorMessage,
  formatCommand,
  type IpFamily,
  isRouteControllerError,
  type ProbeCheck,
  parseVersion,
  type Version,
  versionAtLeast,
} from '@route-controller/core';
import { IPTABLES_TOOLS, type IptablesMode, iptablesBinary } from './binaries.js';
import { classifyIptablesFailure } from './classify-error.js';
import { FILTER_TABLE, IPTABLES_CHAIN } from './constants.js';
import { parseSave } from './parse-save.js';
import { unreadableReasons } from './readability.js';

/**
 * Can this node run the backend in `mode`? The probe only runs `--version` and `-save`: merely
 * running `iptables-nft -L` can create tables, which would then mislead flavour detection.
 */

export interface IptablesVersion {
  /** "1.8.9" */
  readonly version: string;
  /** "nf_tables", "legacy", or undefined for iptables before 1.8 (always legacy). */
  readonly variant: string | undefined;
}

/** Parses "iptables v1.8.9 (nf_tables)" and its -save/-restore twins. */
export function parseIptablesVersion(text: string): IptablesVersion | undefined {
  const match = /\bv(\d+\.\d+(?:\.\d+)?)(?:\s+\(([^)]+)\))?/.exec(text);
  if (!match?.[1]) return undefined;
  return { version: match[1], variant: match[2] };
}

/** iptables-nft before 1.8.4 mistranslates rules (kubernetes-sigs/iptables-wrappers refuses them too). */
export const MINIMUM_NFT_VERSION: Version = [1, 8, 4];

/**
 * The read the probe does. nft: `-save -t filter` shows built-in chains without creating the
 * table. legacy: `-t filter` would make the kernel instantiate the table, so the probe dumps only
 * the tables that already exist (plain `-save`), as iptables-wrappers does.
 */
export function probeReadArgs(mode: IptablesMode): string[] {
  return mode === 'nft' ? ['-t', FILTER_TABLE] : [];
}

export interface IptablesProbeResult {
  readonly availability: Availability;
  /** Families the backend can enforce; IPv4 alone when the ip6tables binaries are missing. */
  readonly families: readonly IpFamily[];
  readonly version?: IptablesVersion;
  /** Why IPv6 is not available, when it is not. */
  readonly ipv6Limitation?: string;
}

interface FamilyReport {
  readonly checks: ProbeCheck[];
  /** The first failure, worded for a reason line. */
  readonly failure?: string;
  /** Its kind (missing binary, permission, ...). */
  readonly failureCode?: ErrorCode;
  readonly version?: IptablesVersion;
}

async function probeFamily(
  runner: CommandRunner,
  mode: IptablesMode,
  family: IpFamily,
  chain: string,
): Promise<FamilyReport> {
  const checks: ProbeCheck[] = [];
  let failure: string | undefined;
  let failureCode: ErrorCode | undefined;
  let version: IptablesVersion | undefined;
  for (const tool of IPTABLES_TOOLS) {
    const file = iptablesBinary(mode, family, tool);
    try {
      const result = await runner.run({ file, args: ['--version'] });
      const text = `${result.stdout}${result.stderr}`.trim();
      const parsed = parseIptablesVersion(text);
      if (result.exitCode === 0 && parsed) {
        checks.push({ name: `binary ${file}`, ok: true, detail: text.split('\n')[0] ?? text });
        if (tool === 'iptables') version = parsed;
      } else {
        const detail = `${file} --version exited ${result.exitCode}: ${text || 'no output'}`;
        checks.push({ name: `binary ${file}`, ok: false, detail });
        failureCode ??= ErrorCodes.CommandFailed;
        failure ??= detail;
      }
    } catch (error) {
      const missing = isRouteControllerError(error, ErrorCodes.CommandNotFound);
      const detail = missing ? `${file} not found` : `${file} --version failed: ${errorMessage(error)}`;
      checks.push({ name: `binary ${file}`, ok: false, detail });
      failureCode ??= isRouteControllerError(error) ? error.code : ErrorCodes.CommandFailed;
      failure ??= detail;
    }
  }
  if (failure === undefined) {
    const file = iptablesBinary(mode, family, 'save');
    const args = probeReadArgs(mode);
    const command = formatCommand({ file, args });
    const name = `read ${family}`;
    try {
      const result = await runner.run({ file, args });
      if (result.exitCode !== 0) {
        const error = classifyIptablesFailure({ file, args, exitCode: result.exitCode, stderr: result.stderr });
        checks.push({ name, ok: false, detail: error.message });
        failure = error.message;
        failureCode = error.code;
      } else {
        const dump = parseSave(result.stdout);
        const reasons = unreadableReasons(dump, result.stderr, chain);
        if (reasons.length > 0) {
          // Exit 0, but not the whole table: apply would write blind (iptables-nft-restore still writes).
          const table = `${family === 'ipv4' ? 'ip' : 'ip6'} ${FILTER_TABLE}`;
          const detail = `${command} cannot show table ${table} in full: ${reasons.join('; ')}`;
          checks.push({ name, ok: false, detail });
          failure = detail;
          failureCode = ErrorCodes.FirewallUnreadable;
        } else {
          checks.push({ name, ok: true, detail: `${command} read ${dump.tables.length} table(s)` });
        }
      }
    } catch (error) {
      const detail = `${command} failed: ${errorMessage(error)}`;
      checks.push({ name, ok: false, detail });
      failure = detail;
      failureCode = isRouteControllerError(error) ? error.code : ErrorCodes.CommandFailed;
    }
  }
  return {
    checks,
    ...(failure !== undefined ? { failure, failureCode: failureCode ?? ErrorCodes.CommandFailed } : {}),
    ...(version ? { version } : {}),
  };
}

function versionCheck(mode: IptablesMode, version: IptablesVersion | undefined): ProbeCheck | undefined {
  if (!version) return undefined;
  const expected = mode === 'nft' ? 'nf_tables' : 'legacy';
  const shown = `${version.version}${version.variant ? ` (${version.variant})` : ''}`;
  const variantOk = version.variant === expected || (mode === 'legacy' && version.variant === undefined);
  if (!variantOk) {
    return { name: 'version', ok: false, detail: `iptables-${mode} reports ${shown}, not the ${expected} variant` };
  }
  if (mode === 'nft' && !versionAtLeast(parseVersion(version.version) ?? [0, 0, 0], MINIMUM_NFT_VERSION)) {
    return {
      name: 'version',
      ok: false,
      detail: `iptables-nft ${shown} is older than ${MINIMUM_NFT_VERSION.join('.')}, whose rule translation is unreliable`,
    };
  }
  return { name: 'version', ok: true, detail: `iptables ${shown}` };
}

export async function probeIptables(
  runner: CommandRunner,
  mode: IptablesMode,
  chain: string = IPTABLES_CHAIN,
): Promise<IptablesProbeResult> {
  const ipv4 = await probeFamily(runner, mode, 'ipv4', chain);
  const ipv6 = await probeFamily(runner, mode, 'ipv6', chain);
  const version = versionCheck(mode, ipv4.version);
  const checks = [...ipv4.checks, ...(version ? [version] : []), ...ipv6.checks];
  const shown = ipv4.version
    ? `iptables-${mode} ${ipv4.version.version}${ipv4.version.variant ? ` (${ipv4.version.variant})` : ''}`
    : `iptables-${mode}`;
  const base = { ...(ipv4.version ? { version: ipv4.version } : {}) };
  // An unreadable filter table is no missing feature to work around with IPv4 alone: the backend
  // would read its own objects in the other family as absent, so it cannot be used at all.
  const unreadable = [ipv4, ipv6].find((report) => report.failureCode === ErrorCodes.FirewallUnreadable);
  const v4Failure = unreadable?.failure ?? ipv4.failure ?? (version && !version.ok ? version.detail : undefined);
  if (v4Failure !== undefined) {
    const failure = unreadable?.failureCode ?? ipv4.failureCode ?? ErrorCodes.FirewallUnsupported;
    return {
      ...base,
      families: [],
      availability: {
        available: false,
        reason: `${shown} cannot be used: ${v4Failure}`,
        checks,
        warnings: [],
        failure,
      },
    };
  }
  if (ipv6.failure !== undefined) {
    const limitation = ipv6.failure;
    const warning = `IPv6 Service CIDRs cannot be enforced with iptables-${mode}: ${limitation}`;
    return {
      ...base,
      families: ['ipv4'],
      ipv6Limitation: limitation,
      availability: {
        available: true,
        reason: `${shown}: IPv4 only (${limitation}); filter table readable`,
        checks,
        warnings: [warning],
      },
    };
  }
  return {
    ...base,
    families: ['ipv4', 'ipv6'],
    availability: {
      available: true,
      reason: `${shown}: binaries present, filter table readable for IPv4 and IPv6`,
      checks,
      warnings: [],
    },
  };
}
