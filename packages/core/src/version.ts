/** A tool's version as three numbers: "nftables v1.0.6" -> [1, 0, 6], "iptables v1.8.9" -> [1, 8, 9]. */
export type Version = readonly [number, number, number];

/** The first "vX.Y[.Z]" (or "X.Y[.Z]") in `text`; a missing patch level reads as 0. */
export function parseVersion(text: string): Version | undefined {
  const match = /\bv?(\d+)\.(\d+)(?:\.(\d+))?/.exec(text);
  if (!match) return undefined;
  return [Number(match[1]), Number(match[2]), Number(match[3] ?? 0)];
}

/** Negative when a < b, zero when equal, positive when a > b. */
export function compareVersions(a: Version, b: Version): number {
  for (let i = 0; i < 3; i += 1) {
    const diff = (a[i] ?? 0) - (b[i] ?? 0);
    if (diff !== 0) return diff;
  }
  return 0;
}

export function versionAtLeast(version: Version, minimum: Version): boolean {
  return compareVersions(version, minimum) >= 0;
}

export const formatVersion = (version: Version): string => version.join('.');
