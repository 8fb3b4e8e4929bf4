import { execFileSync } from 'node:child_process';
import { describe, it } from 'vitest';

/** Binaries the real-kernel tests need, and the Debian package that provides each. */
export const REQUIRED_BINARIES: Readonly<Record<string, string>> = {
  ip: 'iproute2',
  ping: 'iputils-ping',
  nft: 'nftables',
  'iptables-legacy': 'iptables',
  'iptables-nft': 'iptables',
  'ip6tables-legacy': 'iptables',
  'ip6tables-nft': 'iptables',
  'iptables-legacy-save': 'iptables',
  'iptables-nft-save': 'iptables',
};

export const IN_CI = process.env.CI === 'true' || process.env.CI === '1';

function findBinary(name: string): boolean {
  for (const dir of (process.env.PATH ?? '').split(':').concat(['/usr/sbin', '/sbin'])) {
    try {
      execFileSync('test', ['-x', `${dir}/${name}`]);
      return true;
    } catch {
      // keep looking
    }
  }
  return false;
}

let cached: string | undefined | null = null;

/** Why real-kernel tests cannot run here, or undefined when they can. */
export function kernelTestBlocker(): string | undefined {
  if (cached !== null) return cached;
  cached = computeBlocker();
  return cached;
}

function computeBlocker(): string | undefined {
  if (process.platform !== 'linux') return `network namespaces need Linux, this is ${process.platform}`;
  if (process.getuid?.() !== 0) return 'network namespaces need root (run as root, as CI does)';
  const missing = missingTools(REQUIRED_BINARIES);
  if (missing) return missing;
  const probe = `rc-prereq-${process.pid}`;
  try {
    execFileSync('ip', ['netns', 'add', probe], { stdio: 'pipe' });
    execFileSync('ip', ['netns', 'del', probe], { stdio: 'pipe' });
  } catch (error) {
    return `ip netns add failed: ${String((error as { stderr?: Buffer }).stderr ?? error).trim()}`;
  }
  return undefined;
}

/** Prometheus and promtool, from Debian's prometheus package (.ci/run installs it; no service runs). */
export const PROMETHEUS_TOOLS: Readonly<Record<string, string>> = { prometheus: 'prometheus', promtool: 'prometheus' };

/** Which of `tools` (binary: Debian package) are missing, as a blocker, or undefined when none is. */
export function missingTools(tools: Readonly<Record<string, string>>): string | undefined {
  const missing = Object.keys(tools).filter((name) => !findBinary(name));
  if (missing.length === 0) return undefined;
  const packages = [...new Set(missing.map((name) => tools[name]))].join(' ');
  return `missing ${missing.join(', ')} (apt-get install ${packages})`;
}

/**
 * A describe block that runs only without a blocker: otherwise it skips with the reason in the test
 * name, and under CI=true it fails instead, loudly.
 */
function describeUnless(name: string, blocker: string | undefined, body: () => void): void {
  if (!blocker) {
    describe(name, body);
  } else if (IN_CI) {
    describe(name, () => {
      it('has its prerequisites', () => {
        throw new Error(`these tests cannot run under CI=true: ${blocker}`);
      });
    });
  } else {
    console.warn(`[route-controller tests] skipping "${name}": ${blocker}`);
    describe.skip(`${name} [skipped: ${blocker}]`, body);
  }
}

/**
 * A describe block for tests that need root and network namespaces (and `tools`, binary: Debian
 * package, besides the lab's). Where they cannot run they skip with the reason in the test name;
 * under CI=true they fail instead, loudly.
 */
export function describeKernel(name: string, body: () => void, tools: Readonly<Record<string, string>> = {}): void {
  describeUnless(name, kernelTestBlocker() ?? missingTools(tools), body);
}

/** A describe block for tests that need `tools` (binary: Debian package), root or not. */
export function describeWithTools(name: string, tools: Readonly<Record<string, string>>, body: () => void): void {
  describeUnless(name, missingTools(tools), body);
}
