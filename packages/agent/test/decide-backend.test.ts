import type { IptablesFlavourDetection } from '@route-controller/backend-iptables';
import { type Availability, ErrorCodes } from '@route-controller/core';
import { describe, expect, it } from 'vitest';
import { decideBackend } from '../src/backends/decide-backend.js';
import type { BackendChoice, BackendName } from '../src/config/settings.js';

const yes = (reason: string): Availability => ({ available: true, reason, checks: [], warnings: [] });
const no = (reason: string): Availability => ({ available: false, reason, checks: [], warnings: [] });
const detected = (mode: 'nft' | 'legacy'): IptablesFlavourDetection => ({
  mode,
  reason: `${mode} evidence`,
  evidence: { nftHint: mode === 'nft', legacyHint: mode === 'legacy', nftRules: 0, legacyRules: 0 },
});

type Row = [
  requested: BackendChoice,
  nft: boolean | undefined,
  iptablesNft: boolean | undefined,
  iptablesLegacy: boolean | undefined,
  flavour: 'nft' | 'legacy' | undefined,
  chosen: BackendName | 'error',
  warnings: number,
];

// The auto-selection matrix: what each probe said, and what must be chosen.
const matrix: Row[] = [
  ['auto', true, undefined, undefined, undefined, 'nft', 0],
  ['auto', true, true, true, 'legacy', 'nft', 0],
  ['auto', false, true, true, 'nft', 'iptables-nft', 0],
  ['auto', false, true, true, 'legacy', 'iptables-legacy', 0],
  ['auto', false, false, true, 'nft', 'iptables-legacy', 1],
  ['auto', false, true, false, 'legacy', 'iptables-nft', 1],
  ['auto', false, false, false, 'nft', 'error', 0],
  ['auto', false, false, false, 'legacy', 'error', 0],
  ['nft', true, undefined, undefined, undefined, 'nft', 0],
  ['nft', false, undefined, undefined, undefined, 'nft', 1],
  ['iptables-legacy', undefined, undefined, true, 'legacy', 'iptables-legacy', 0],
  ['iptables-legacy', undefined, undefined, true, 'nft', 'iptables-legacy', 1],
  ['iptables-legacy', undefined, undefined, false, 'nft', 'iptables-legacy', 2],
  ['iptables-nft', undefined, true, undefined, 'nft', 'iptables-nft', 0],
];

describe('decideBackend', () => {
  for (const [requested, nft, ipNft, ipLegacy, flavour, chosen, warnings] of matrix) {
    const label = `requested ${requested}, nft ${nft}, iptables-nft ${ipNft}, iptables-legacy ${ipLegacy}, flavour ${flavour}`;
    it(`${label} -> ${chosen}`, () => {
      const availability: Partial<Record<BackendName, Availability>> = {};
      if (nft !== undefined) availability.nft = nft ? yes('nft 1.0.6 with JSON') : no('nft not found');
      if (ipNft !== undefined) availability['iptables-nft'] = ipNft ? yes('iptables-nft works') : no('no iptables-nft');
      if (ipLegacy !== undefined) availability['iptables-legacy'] = ipLegacy ? yes('legacy works') : no('no legacy');
      const findings = flavour ? { availability, detection: detected(flavour) } : { availability };
      if (chosen === 'error') {
        expect(() => decideBackend(requested, findings)).toThrow(
          expect.objectContaining({ code: ErrorCodes.BackendUnavailable }),
        );
        return;
      }
      const decision = decideBackend(requested, findings);
      expect(decision.backend).toBe(chosen);
      expect(decision.reason).not.toBe('');
      expect(decision.warnings).toHaveLength(warnings);
    });
  }

  it('explains an iptables choice with the nft failure and the flavour evidence', () => {
    const decision = decideBackend('auto', {
      availability: {
        nft: no('nft 0.9.8 is older than 1.0.1'),
        'iptables-legacy': yes('ok'),
        'iptables-nft': yes('ok'),
      },
      detection: detected('legacy'),
    });
    expect(decision.reason).toContain('nft 0.9.8 is older than 1.0.1');
    expect(decision.reason).toContain('legacy evidence');
  });

  it('names every backend and why it failed when none works', () => {
    const decide = () =>
      decideBackend('auto', {
        availability: { nft: no('nft not found'), 'iptables-nft': no('a'), 'iptables-legacy': no('b') },
        detection: detected('nft'),
      });
    expect(decide).toThrow(
      expect.objectContaining({
        code: ErrorCodes.BackendUnavailable,
        message: expect.stringMatching(/nft: nft not found.*iptables-nft: a.*iptables-legacy: b/),
        hint: expect.any(String),
      }),
    );
  });

  it('warns about a flavour mismatch only when the node shows one: not on a blank or unreadable node', () => {
    const findings = (basis: 'kubelet-hint' | 'rule-count' | 'blank-node' | 'unreadable') => ({
      availability: { 'iptables-legacy': yes('legacy works') },
      detection: { ...detected('nft'), basis },
    });
    expect(decideBackend('iptables-legacy', findings('kubelet-hint')).warnings).toHaveLength(1);
    expect(decideBackend('iptables-legacy', findings('rule-count')).warnings).toHaveLength(1);
    expect(decideBackend('iptables-legacy', findings('blank-node')).warnings).toEqual([]);
    expect(decideBackend('iptables-legacy', findings('unreadable')).warnings).toEqual([]);
  });

  it('tells a user without permission to run as root, not to install nftables', () => {
    const denied = (reason: string): Availability => ({ ...no(reason), failure: ErrorCodes.FirewallPermission });
    const missing = (reason: string): Availability => ({ ...no(reason), failure: ErrorCodes.CommandNotFound });
    const hintFor = (availability: Partial<Record<BackendName, Availability>>) => {
      try {
        decideBackend('auto', { availability, detection: detected('nft') });
      } catch (error) {
        return (error as { hint?: string }).hint ?? '';
      }
      throw new Error('decideBackend chose a backend');
    };
    const asUser = hintFor({
      nft: denied('--check failed: Operation not permitted'),
      'iptables-nft': denied('Permission denied (you must be root)'),
      'iptables-legacy': denied('Permission denied (you must be root)'),
    });
    expect(asUser).toMatch(/^Run route-controller as root/);
    expect(asUser).not.toMatch(/Install/);
    const bare = hintFor({
      nft: missing('nft not found'),
      'iptables-nft': missing('x'),
      'iptables-legacy': missing('y'),
    });
    expect(bare).toMatch(/^Install nftables/);
  });
});
