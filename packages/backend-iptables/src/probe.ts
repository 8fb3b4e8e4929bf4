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
import { IPTABLES_CHAIN } from './constants.js';
import { familyReadArgs, readFamily } from './family-read.js';
import type { SaveDump } from './parse-save.js';
import {
  describePlacements,
  fallbackWarning,
  type Placements,
  probedPlacement,
  SECURITY_EVERYWHERE,
} from './placement.js';

/**
 * Can this node run the backend in `mode`, and where do our objects go? The probe only runs
 * `--version` and the backend's own `-save` reads (family-read.ts): merely running `iptables-nft -L`
 * can create tables, and a legacy `-t` read creates the table it names, which would then mislead
 * flavour detection.
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

export interface IptablesProbeResult {
  readonly availability: Availability;
  /** Families the backend can enforce; IPv4 alone when the ip6tables binaries are missing. */
  readonly families: readonly IpFamily[];
  /** Where our objects belong per family, as far as the probe's reads can tell (see placement.ts). */
  readonly placements: Placements;
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
  /** What the read found, when it worked. */
  readonly dump?: SaveDump;
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
  let dump: SaveDump | undefined;
  if (failure === undefined) {
    const file = iptablesBinary(mode, family, 'save');
    const commands = familyReadArgs(mode)
      .map((args) => formatCommand({ file, args }))
      .join(' and ');
    const name = `read ${family}`;
    try {
      dump = await readFamily(runner, mode, family, chain);
      checks.push({ name, ok: true, detail: `${commands} read ${dump.tables.length} table(s)` });
    } catch (error) {
      // Exit 0 but not the whole table is unreadable: apply would write blind (iptables-nft-restore still writes).
      const detail = isRouteControllerError(error) ? error.message : `${commands} failed: ${errorMessage(error)}`;
      checks.push({ name, ok: false, detail });
      failure = detail;
      failureCode = isRouteControllerError(error) ? error.code : ErrorCodes.CommandFailed;
    }
  }
  return {
    checks,
    ...(failure !== undefined ? { failure, failureCode: failureCode ?? ErrorCodes.CommandFailed } : {}),
    ...(version ? { version } : {}),
    ...(dump ? { dump } : {}),
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
  // An unreadable table is no missing feature to work around with IPv4 alone: the backend would
  // read its own objects in the other family as absent, so it cannot be used at all.
  const unreadable = [ipv4, ipv6].find((report) => report.failureCode === ErrorCodes.FirewallUnreadable);
  const v4Failure = unreadable?.failure ?? ipv4.failure ?? (version && !version.ok ? version.detail : undefined);
  if (v4Failure !== undefined) {
    const failure = unreadable?.failureCode ?? ipv4.failureCode ?? ErrorCodes.FirewallUnsupported;
    return {
      ...base,
      families: [],
      placements: SECURITY_EVERYWHERE,
      availability: {
        available: false,
        reason: `${shown} cannot be used: ${v4Failure}`,
        checks,
        warnings: [],
        failure,
      },
    };
  }
  const families: IpFamily[] = ipv6.failure === undefined ? ['ipv4', 'ipv6'] : ['ipv4'];
  const placementOf = (family: IpFamily, report: FamilyReport) =>
    report.dump ? probedPlacement(mode, report.dump, chain, family) : 'security';
  const placements: Placements = { ipv4: placementOf('ipv4', ipv4), ipv6: placementOf('ipv6', ipv6) };
  checks.push({ name: 'placement', ok: true, detail: describePlacements(mode, placements, families) });
  const warnings = families.filter((family) => placements[family] === 'filter').map(fallbackWarning);
  if (ipv6.failure !== undefined) {
    const limitation = ipv6.failure;
    return {
      ...base,
      families,
      placements,
      ipv6Limitation: limitation,
      availability: {
        available: true,
        reason: `${shown}: IPv4 only (${limitation}); tables readable`,
        checks,
        warnings: [`IPv6 Service CIDRs cannot be enforced with iptables-${mode}: ${limitation}`, ...warnings],
      },
    };
  }
  return {
    ...base,
    families,
    placements,
    availability: {
      available: true,
      reason: `${shown}: binaries present, tables readable for IPv4 and IPv6`,
      checks,
      warnings,
    },
  };
}
