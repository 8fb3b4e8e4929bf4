import { type Cidr, cidrContains, compareCidrs, type IpFamily, parseCidr } from './cidr.js';

/**
 * Service CIDRs per family, normalised: canonical, sorted, no duplicates and no range inside
 * another, so a backend never receives overlapping intervals (nft interval sets refuse them).
 */
export interface ServiceCidrs {
  readonly ipv4: readonly Cidr[];
  readonly ipv6: readonly Cidr[];
}

export const NO_SERVICE_CIDRS: ServiceCidrs = Object.freeze({ ipv4: Object.freeze([]), ipv6: Object.freeze([]) });

/** Something normalisation changed, worth a log line (never an error). */
export type NormalizationNote =
  | { readonly kind: 'host-bits-cleared'; readonly entry: string; readonly cidr: string }
  | { readonly kind: 'duplicate'; readonly entry: string; readonly cidr: string }
  | { readonly kind: 'contained'; readonly entry: string; readonly cidr: string; readonly within: string };

export interface NormalizedCidrs {
  readonly cidrs: ServiceCidrs;
  readonly notes: readonly NormalizationNote[];
}

export function describeNote(note: NormalizationNote): string {
  switch (note.kind) {
    case 'host-bits-cleared':
      return `"${note.entry}" has host bits set; using its network ${note.cidr}`;
    case 'duplicate':
      return `"${note.entry}" repeats ${note.cidr}; ignored`;
    case 'contained':
      return `"${note.entry}" lies inside ${note.within}; merged into it`;
  }
}

/** Parses and normalises entries; throws a coded error naming the first bad entry. */
export function normalizeCidrs(entries: readonly string[]): NormalizedCidrs {
  const notes: NormalizationNote[] = [];
  const parsed: { cidr: Cidr; input: string }[] = [];
  for (const entry of entries) {
    if (entry.trim() === '') continue;
    const result = parseCidr(entry);
    if (result.hostBitsCleared) notes.push({ kind: 'host-bits-cleared', entry: result.input, cidr: result.cidr.text });
    parsed.push(result);
  }
  // Wider ranges first at equal start, so each range only needs checking against the last kept one.
  parsed.sort((a, b) => compareCidrs(a.cidr, b.cidr));
  const kept: Cidr[] = [];
  for (const { cidr, input } of parsed) {
    const previous = kept.at(-1);
    if (previous && cidrContains(previous, cidr)) {
      notes.push(
        previous.text === cidr.text
          ? { kind: 'duplicate', entry: input, cidr: cidr.text }
          : { kind: 'contained', entry: input, cidr: cidr.text, within: previous.text },
      );
      continue;
    }
    kept.push(cidr);
  }
  return { cidrs: byFamily(kept), notes };
}

/** Parses a comma-separated list such as SERVICE_CIDRS; blank entries are ignored. */
export function parseCidrList(text: string): NormalizedCidrs {
  return normalizeCidrs(text.split(','));
}

function byFamily(cidrs: readonly Cidr[]): ServiceCidrs {
  return Object.freeze({
    ipv4: Object.freeze(cidrs.filter((c) => c.family === 'ipv4')),
    ipv6: Object.freeze(cidrs.filter((c) => c.family === 'ipv6')),
  });
}

export function cidrsOf(cidrs: ServiceCidrs, family: IpFamily): readonly Cidr[] {
  return family === 'ipv4' ? cidrs.ipv4 : cidrs.ipv6;
}

export function cidrTexts(list: readonly Cidr[]): string[] {
  return list.map((c) => c.text);
}

export function countCidrs(cidrs: ServiceCidrs): number {
  return cidrs.ipv4.length + cidrs.ipv6.length;
}

export function sameCidrList(a: readonly Cidr[], b: readonly Cidr[]): boolean {
  return a.length === b.length && a.every((cidr, i) => cidr.text === b[i]?.text);
}

export function sameServiceCidrs(a: ServiceCidrs, b: ServiceCidrs): boolean {
  return sameCidrList(a.ipv4, b.ipv4) && sameCidrList(a.ipv6, b.ipv6);
}

/** "10.96.0.0/12, fd00:10:96::/108" or "none". */
export function formatServiceCidrs(cidrs: ServiceCidrs): string {
  const all = [...cidrs.ipv4, ...cidrs.ipv6];
  return all.length === 0 ? 'none' : cidrTexts(all).join(', ');
}
