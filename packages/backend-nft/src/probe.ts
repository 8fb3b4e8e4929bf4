import {
  type Availability,
  type CommandRunner,
  compareVersions,
  desiredState,
  type ErrorCode,
  ErrorCodes,
  errorMessage,
  formatVersion,
  isRouteControllerError,
  type ProbeCheck,
  parseCidr,
  parseVersion,
  type ServiceCidrs,
  type Version,
} from '@route-controller/core';
import { classifyNftStderr, firstErrorLine } from './classify-error.js';
import { NFT_CHAIN, NFT_CHAIN_PRIORITY, NFT_FAMILY, type NftLayout } from './layout.js';
import type { NftDocument } from './nft-json.js';
import { renderReplaceTransaction, renderWriteCommand } from './render.js';

/** The oldest nft we trust: JSON input and output with interval sets and `reject` stable. */
export const MIN_NFT_VERSION = '1.0.1';

const MINIMUM: Version = parseVersion(MIN_NFT_VERSION) ?? [1, 0, 1];

/**
 * The oldest nft that keeps the record sets' per-element counters: JSON `"stmt"` on a set arrived in
 * 1.0.6, and older releases drop the key without a word (the sets would count nothing). Older nft
 * still serves as the backend, without records.
 */
export const MIN_NFT_RECORDS_VERSION = '1.0.6';

const RECORDS_MINIMUM: Version = parseVersion(MIN_NFT_RECORDS_VERSION) ?? [1, 0, 6];

/** What the probe found, and whether this nft and kernel can keep hit records. */
export interface NftProbe {
  readonly availability: Availability;
  /** False when the layout asks for records but this nft or kernel cannot keep them (see warnings). */
  readonly records: boolean;
}

/** Dry run: the kernel validates the whole batch, then nft aborts it instead of committing. */
export const NFT_CHECK_FLAG = '--check';

// Documentation ranges (RFC 5737, RFC 3849): the dry run never commits, but keep it harmless anyway.
const PROBE_CIDRS: ServiceCidrs = {
  ipv4: [parseCidr('192.0.2.0/24').cidr],
  ipv6: [parseCidr('2001:db8::/112').cidr],
};

/** The small transaction the probe dry-runs: the real table layout, replaced as apply would. */
export function probeDocument(layout: NftLayout): NftDocument {
  const cidrs: ServiceCidrs = {
    ipv4: layout.families.includes('ipv4') ? PROBE_CIDRS.ipv4 : [],
    ipv6: layout.families.includes('ipv6') ? PROBE_CIDRS.ipv6 : [],
  };
  return renderReplaceTransaction(desiredState(cidrs, 'drop'), layout);
}

type CheckName = 'binary' | 'version' | 'json' | 'check';
const CHECK_ORDER: readonly CheckName[] = ['binary', 'version', 'json', 'check'];

/**
 * Decides whether nft can serve as our backend, one check at a time: the binary runs, it is new
 * enough, it has JSON, and a dry run of a real transaction passes (proving permission and kernel
 * support). The first failure decides; later checks are reported as not run. Reads only; two
 * commands on a current nft (-V and the dry run, side by side), as it sits on the agent's start-up
 * path.
 */
export async function probeNft(runner: CommandRunner, nft: string, layout: NftLayout): Promise<Availability> {
  return (await probeNftFeatures(runner, nft, layout)).availability;
}

/**
 * probeNft, and whether the records the layout asks for can be kept: nft older than 1.0.6, or a
 * kernel that refuses the record sets (a dry run without them then passes), leaves the backend
 * usable without records, with a warning saying so.
 */
export async function probeNftFeatures(runner: CommandRunner, nft: string, layout: NftLayout): Promise<NftProbe> {
  const checks: ProbeCheck[] = [];
  const warnings: string[] = [];
  let records = layout.records !== undefined;
  const finish = (reason: string, failure?: ErrorCode): NftProbe => {
    const failed = checks.some((check) => !check.ok);
    for (const name of CHECK_ORDER.slice(checks.length)) {
      checks.push({ name, ok: false, detail: 'not checked: an earlier check failed' });
    }
    // Where the rules sit, for `probe` and `status` (the iptables backend says the same of its own).
    if (!failed) checks.push({ name: 'placement', ok: true, detail: placementDetail(layout) });
    return {
      availability: {
        available: !failed,
        reason,
        checks,
        warnings,
        ...(failed ? { failure: failure ?? ErrorCodes.FirewallUnsupported } : {}),
      },
      records: records && !failed,
    };
  };

  // The dry run (check 4) runs beside `nft -V` (checks 1-3), as the probe sits on the agent's start-up
  // path; its outcome is only looked at once the earlier checks have passed. It is started first: it
  // takes longer than `nft -V`, and starting a process costs the caller a few milliseconds.
  const request = renderWriteCommand(probeDocument(layout), nft, [NFT_CHECK_FLAG]);
  const dryRun = runner.run(request).then(
    (result) => ({ result }),
    (error: unknown) => ({ error }),
  );
  const versionRun = runner.run({ file: nft, args: ['-V'] });

  // 1. The binary runs at all. `nft -V` (nft >= 1.0.4) prints the version and "json: yes|no" in
  //    one go; older builds refuse -V, and are asked `--version` and `-j --version` instead.
  let versionText: string;
  let longOutput: string | undefined;
  try {
    const long = await versionRun;
    if (long.exitCode === 0) {
      longOutput = long.stdout;
      versionText = long.stdout.split('\n')[0]?.trim() ?? '';
    } else {
      const result = await runner.run({ file: nft, args: ['--version'] });
      if (result.exitCode !== 0) {
        checks.push({
          name: 'binary',
          ok: false,
          detail: `${nft} --version exited ${result.exitCode}: ${firstErrorLine(result.stderr)}`,
        });
        return finish(`${nft} --version failed`, ErrorCodes.CommandFailed);
      }
      versionText = result.stdout.trim();
    }
  } catch (error) {
    checks.push({ name: 'binary', ok: false, detail: errorMessage(error) });
    const missing = isRouteControllerError(error, ErrorCodes.CommandNotFound);
    return missing
      ? finish(`${nft} not found`, ErrorCodes.CommandNotFound)
      : finish(`${nft} could not be run: ${errorMessage(error)}`, codeOf(error));
  }
  checks.push({ name: 'binary', ok: true, detail: `${nft} found: ${versionText}` });

  // 2. Its version.
  const version = parseVersion(versionText);
  if (!version) {
    checks.push({ name: 'version', ok: false, detail: `cannot read a version from "${versionText}"` });
    return finish(`cannot tell the nft version from "${versionText}"`);
  }
  const shown = formatVersion(version);
  if (compareVersions(version, MINIMUM) < 0) {
    checks.push({ name: 'version', ok: false, detail: `${shown} is older than ${MIN_NFT_VERSION}` });
    return finish(`nft ${shown} is older than ${MIN_NFT_VERSION}`);
  }
  checks.push({ name: 'version', ok: true, detail: `${shown} >= ${MIN_NFT_VERSION}` });
  if (records && compareVersions(version, RECORDS_MINIMUM) < 0) {
    records = false;
    warnings.push(
      `nft ${shown} is older than ${MIN_NFT_RECORDS_VERSION}, whose JSON keeps the record sets' counters: who dials stale ClusterIPs is not recorded (the rules work as ever; install nftables ${MIN_NFT_RECORDS_VERSION} or newer to have it)`,
    );
  }

  // 3. JSON support, from -V's "json:" line, or (older builds) whether `-j --version` is accepted.
  const json = await jsonSupport(runner, nft, longOutput);
  checks.push({ name: 'json', ok: json.ok, detail: json.detail });
  if (!json.ok) return finish(`nft ${shown} lacks JSON support`);

  // 4. A dry run of a real transaction: the kernel checks it all, nothing is committed.
  const dry = await dryRun;
  if ('error' in dry) {
    checks.push({ name: 'check', ok: false, detail: errorMessage(dry.error) });
    return finish(`nft ${shown} with JSON, but --check could not run: ${errorMessage(dry.error)}`, codeOf(dry.error));
  }
  if (dry.result.exitCode !== 0) {
    const why = firstErrorLine(dry.result.stderr);
    // The record sets need more of the kernel (dynamic sets with per-element counters, 5.7+) than
    // the rule alone: without them the backend may still work.
    const refusal = classifyNftStderr(dry.result.stderr).code;
    const plain =
      layout.records && refusal !== ErrorCodes.FirewallPermission
        ? await dryRunWithoutRecords(runner, nft, layout)
        : undefined;
    if (plain?.exitCode === 0) {
      records = false;
      warnings.push(
        `the kernel refused the record sets (${why}): who dials stale ClusterIPs is not recorded (the rules work as ever)`,
      );
      checks.push({
        name: 'check',
        ok: true,
        detail: `a dry run of our table passed without the record sets (${why})`,
      });
      return finish(`nft ${shown} with JSON, --check passed`);
    }
    checks.push({ name: 'check', ok: false, detail: `${nft} -j --check of our table failed: ${why}` });
    return finish(`nft ${shown} with JSON, but --check failed: ${why}`, refusal);
  }
  checks.push({ name: 'check', ok: true, detail: 'a dry run of our table passed' });
  return finish(`nft ${shown} with JSON, --check passed`);
}

function placementDetail(layout: NftLayout): string {
  return `base chain ${NFT_CHAIN} of table ${NFT_FAMILY} ${layout.table} at priority filter + ${NFT_CHAIN_PRIORITY}, after filter: kube-proxy's REJECT answers first`;
}

async function dryRunWithoutRecords(runner: CommandRunner, nft: string, layout: NftLayout) {
  const request = renderWriteCommand(probeDocument({ ...layout, records: undefined }), nft, [NFT_CHECK_FLAG]);
  return runner.run(request).catch(() => undefined);
}

async function jsonSupport(
  runner: CommandRunner,
  nft: string,
  longOutput: string | undefined,
): Promise<{ ok: boolean; detail: string }> {
  const said = longOutput === undefined ? undefined : /^\s*json:\s*(\w+)/m.exec(longOutput)?.[1];
  if (said !== undefined) {
    return said === 'yes'
      ? { ok: true, detail: `${nft} -V reports json: yes` }
      : { ok: false, detail: `${nft} -V reports json: ${said} (built without libjansson)` };
  }
  try {
    const probe = await runner.run({ file: nft, args: ['-j', '--version'] });
    return probe.exitCode === 0
      ? { ok: true, detail: `${nft} -j accepted` }
      : { ok: false, detail: `${nft} -j refused: ${firstErrorLine(probe.stderr)}` };
  } catch (error) {
    return { ok: false, detail: errorMessage(error) };
  }
}

function codeOf(error: unknown): ErrorCode {
  return isRouteControllerError(error) ? error.code : ErrorCodes.CommandFailed;
}
