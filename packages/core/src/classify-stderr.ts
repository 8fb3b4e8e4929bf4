import type { ErrorCode } from './errors.js';

/**
 * Firewall tools report failures only as text on stderr (LC_ALL=C, which the command runner sets).
 * Each backend keeps a table of these rules, first match wins; the patterns every tool shares
 * live here.
 */
export interface StderrRule<C = ErrorCode> {
  readonly pattern: RegExp;
  readonly classification: C;
}

/** Not root, or no CAP_NET_ADMIN: the kernel's EPERM/EACCES as nft and iptables word it. */
export const PERMISSION_DENIED = /Operation not permitted|Permission denied|you must be root/i;

/** The first rule whose pattern matches `stderr`, or undefined. */
export function classifyStderr<C>(stderr: string, rules: readonly StderrRule<C>[]): C | undefined {
  return rules.find((rule) => rule.pattern.test(stderr))?.classification;
}

/** The first non-blank line of a tool's stderr, trimmed ("" when there is none). */
export function firstLine(text: string): string {
  return (
    text
      .split('\n')
      .map((line) => line.trim())
      .find(Boolean) ?? ''
  );
}
