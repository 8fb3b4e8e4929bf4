import {
  type BlockAction,
  type Cidr,
  type IpFamily,
  isInSync,
  MAX_CIDRS_PER_FAMILY,
  parseCidr,
} from '@route-controller/core';
import { desired } from '@route-controller/core/testing';
import { describe, expect, it } from 'vitest';
import { absentFamilyState, familyStateFromSave, observedState, type Placement, tableFor } from '../src/chain-state.js';
import { parseSave } from '../src/parse-save.js';
import {
  describeChange,
  renderRemovalPayload,
  renderRestorePayload,
  restoreCommand,
  restoreTimeoutMs,
} from '../src/render.js';
import {
  BUSY_NODE_FILTER,
  BUSY_NODE_SECURITY,
  EMPTY_FILTER,
  EMPTY_SECURITY,
  FALLBACK_JUMP,
  fallbackSave,
  installedSave,
  JUMP,
  oldLayoutSave,
  RULE,
  securitySave,
} from './samples.js';

const cidrs = (...texts: string[]): Cidr[] => texts.map((text) => parseCidr(text).cidr);
const stateOf = (save: string, family: IpFamily = 'ipv4') =>
  familyStateFromSave(parseSave(save), family, 'ROUTE-CONTROLLER');
const target = (texts: string[], action: BlockAction = 'drop') => ({ cidrs: cidrs(...texts), action });
const fresh = (family: IpFamily = 'ipv4', chain = 'ROUTE-CONTROLLER') => absentFamilyState(family, chain);
const SECURE = { ipv4: 'security', ipv6: 'security' } as const;
/** The payload the backend writes: in the drop's placement, or in filter for reject (tableFor). */
const render = (save: string, want: ReturnType<typeof target>, placement: Placement = 'security') =>
  renderRestorePayload(stateOf(save), tableFor(want.action, placement), want);
const FILTER_JUMP_LINE = `-I FORWARD 1 ${'-m comment --comment "route-controller: block forwarded traffic to Service CIDRs (filter)" -j ROUTE-CONTROLLER'}`;

describe('restore payloads (golden)', () => {
  it('fresh install, IPv4, drop: our chain and jump in the security table', () => {
    expect(renderRestorePayload(fresh(), 'security', target(['10.96.0.0/16', '10.100.0.0/24']))).toBe(`*security
:ROUTE-CONTROLLER - [0:0]
[0:0] -A ROUTE-CONTROLLER -d 10.96.0.0/16 -m comment --comment "route-controller: Service CIDR" -j DROP
[0:0] -A ROUTE-CONTROLLER -d 10.100.0.0/24 -m comment --comment "route-controller: Service CIDR" -j DROP
-I FORWARD 1 -m comment --comment "route-controller: block forwarded traffic to Service CIDRs" -j ROUTE-CONTROLLER
COMMIT
`);
  });

  it('fresh install, IPv4, reject with icmp-admin-prohibited: in filter FORWARD, where the REJECT target works', () => {
    expect(render(EMPTY_FILTER, target(['10.96.0.0/16'], 'reject'))).toBe(`*filter
:ROUTE-CONTROLLER - [0:0]
[0:0] -A ROUTE-CONTROLLER -d 10.96.0.0/16 -m comment --comment "route-controller: Service CIDR" -j REJECT --reject-with icmp-admin-prohibited
${FILTER_JUMP_LINE}
COMMIT
`);
  });

  it('fresh install, IPv6, drop and reject with icmp6-adm-prohibited', () => {
    const state = fresh('ipv6');
    expect(renderRestorePayload(state, 'security', target(['fd00:10:96::/112', 'fd00:aaaa::/64']))).toBe(`*security
:ROUTE-CONTROLLER - [0:0]
[0:0] -A ROUTE-CONTROLLER -d fd00:10:96::/112 -m comment --comment "route-controller: Service CIDR" -j DROP
[0:0] -A ROUTE-CONTROLLER -d fd00:aaaa::/64 -m comment --comment "route-controller: Service CIDR" -j DROP
-I FORWARD 1 -m comment --comment "route-controller: block forwarded traffic to Service CIDRs" -j ROUTE-CONTROLLER
COMMIT
`);
    expect(renderRestorePayload(state, 'filter', target(['fd00:10:96::/112'], 'reject'))).toBe(`*filter
:ROUTE-CONTROLLER - [0:0]
[0:0] -A ROUTE-CONTROLLER -d fd00:10:96::/112 -m comment --comment "route-controller: Service CIDR" -j REJECT --reject-with icmp6-adm-prohibited
${FILTER_JUMP_LINE}
COMMIT
`);
  });

  it('fresh install in the fallback: filter FORWARD at position 1, the jump marked as the fallback', () => {
    expect(renderRestorePayload(fresh(), 'filter', target(['10.96.0.0/16']))).toBe(`*filter
:ROUTE-CONTROLLER - [0:0]
[0:0] -A ROUTE-CONTROLLER -d 10.96.0.0/16 -m comment --comment "route-controller: Service CIDR" -j DROP
-I FORWARD 1 -m comment --comment "route-controller: block forwarded traffic to Service CIDRs (filter)" -j ROUTE-CONTROLLER
COMMIT
`);
  });

  it("upgrade: installs in security first, then removes 0.1.0's chain and jump from filter, keeping the counters", () => {
    const old = oldLayoutSave([`[7:420] ${RULE('10.96.0.0/16')}`]);
    expect(render(`${EMPTY_SECURITY}${old}`, target(['10.96.0.0/16']))).toBe(`*security
:ROUTE-CONTROLLER - [0:0]
[7:420] -A ROUTE-CONTROLLER -d 10.96.0.0/16 -m comment --comment "route-controller: Service CIDR" -j DROP
-I FORWARD 1 -m comment --comment "route-controller: block forwarded traffic to Service CIDRs" -j ROUTE-CONTROLLER
COMMIT
*filter
-D FORWARD -m comment --comment "route-controller: block forwarded traffic to Service CIDRs" -j ROUTE-CONTROLLER
-F ROUTE-CONTROLLER
-X ROUTE-CONTROLLER
COMMIT
`);
  });

  it("upgrade on a kernel without the security table: 0.1.0's jump is replaced by the fallback jump, the chain kept", () => {
    const old = oldLayoutSave([`[7:420] ${RULE('10.96.0.0/16')}`]);
    expect(render(old, target(['10.96.0.0/16']), 'filter')).toBe(`*filter
-D FORWARD -m comment --comment "route-controller: block forwarded traffic to Service CIDRs" -j ROUTE-CONTROLLER
-I FORWARD 1 -m comment --comment "route-controller: block forwarded traffic to Service CIDRs (filter)" -j ROUTE-CONTROLLER
COMMIT
`);
  });

  it('the fallback layout, once the security table can be used, moves there the same way', () => {
    const payload = render(fallbackSave([RULE('10.96.0.0/16')]), target(['10.96.0.0/16']));
    expect(payload?.split('COMMIT\n')).toEqual([
      expect.stringMatching(/^\*security\n:ROUTE-CONTROLLER - \[0:0\]\n/),
      `*filter\n-D FORWARD ${FALLBACK_JUMP}\n-F ROUTE-CONTROLLER\n-X ROUTE-CONTROLLER\n`,
      '',
    ]);
  });

  it('repairs a busy security table: stale CIDR deleted, new one appended, kept rule untouched; duplicate pushed-down jump replaced', () => {
    expect(render(BUSY_NODE_SECURITY, target(['10.96.0.0/16', '10.100.0.0/24']))).toBe(`*security
-D ROUTE-CONTROLLER -d 10.1.0.0/16 -m comment --comment "route-controller: Service CIDR" -j DROP
-A ROUTE-CONTROLLER -d 10.100.0.0/24 -m comment --comment "route-controller: Service CIDR" -j DROP
-D FORWARD -m comment --comment "route-controller: block forwarded traffic to Service CIDRs" -j ROUTE-CONTROLLER
-D FORWARD -m comment --comment "route-controller: block forwarded traffic to Service CIDRs" -j ROUTE-CONTROLLER
-I FORWARD 1 -m comment --comment "route-controller: block forwarded traffic to Service CIDRs" -j ROUTE-CONTROLLER
COMMIT
`);
  });

  it('updates rule by rule, deleting a duplicate beyond the first', () => {
    const save = installedSave([RULE('10.96.0.0/16'), RULE('10.96.0.0/16'), RULE('10.98.0.0/16')]);
    expect(render(save, target(['10.96.0.0/16', '10.97.0.0/16']))).toBe(`*security
-D ROUTE-CONTROLLER -d 10.96.0.0/16 -m comment --comment "route-controller: Service CIDR" -j DROP
-D ROUTE-CONTROLLER -d 10.98.0.0/16 -m comment --comment "route-controller: Service CIDR" -j DROP
-A ROUTE-CONTROLLER -d 10.97.0.0/16 -m comment --comment "route-controller: Service CIDR" -j DROP
COMMIT
`);
  });

  it('rewrites with carried counters when no rule stays', () => {
    const save = securitySave({
      forward: [`-A FORWARD ${JUMP}`],
      ours: [`[9:540] -A ROUTE-CONTROLLER ${RULE('10.96.0.0/16')}`],
    });
    expect(render(save, target(['10.97.0.0/16', '10.200.0.0/16']))).toBe(`*security
:ROUTE-CONTROLLER - [0:0]
[0:0] -A ROUTE-CONTROLLER -d 10.97.0.0/16 -m comment --comment "route-controller: Service CIDR" -j DROP
[0:0] -A ROUTE-CONTROLLER -d 10.200.0.0/16 -m comment --comment "route-controller: Service CIDR" -j DROP
COMMIT
`);
    // A switch to reject moves the chain to filter, the counters with it.
    expect(render(save, target(['10.96.0.0/16', '10.97.0.0/16'], 'reject'))).toBe(`*filter
:ROUTE-CONTROLLER - [0:0]
[9:540] -A ROUTE-CONTROLLER -d 10.96.0.0/16 -m comment --comment "route-controller: Service CIDR" -j REJECT --reject-with icmp-admin-prohibited
[0:0] -A ROUTE-CONTROLLER -d 10.97.0.0/16 -m comment --comment "route-controller: Service CIDR" -j REJECT --reject-with icmp-admin-prohibited
${FILTER_JUMP_LINE}
COMMIT
*security
-D FORWARD -m comment --comment "route-controller: block forwarded traffic to Service CIDRs" -j ROUTE-CONTROLLER
-F ROUTE-CONTROLLER
-X ROUTE-CONTROLLER
COMMIT
`);
    expect(render(save, target(['10.200.0.0/16']))).toBe(`*security
:ROUTE-CONTROLLER - [0:0]
[0:0] -A ROUTE-CONTROLLER -d 10.200.0.0/16 -m comment --comment "route-controller: Service CIDR" -j DROP
COMMIT
`);
  });

  it('only moves the jump when the chain is right but someone inserted an ACCEPT above it', () => {
    const save = securitySave({
      forward: ['-A FORWARD -s 10.244.0.0/16 -j ACCEPT', `-A FORWARD ${JUMP}`],
      ours: [`[7:420] -A ROUTE-CONTROLLER ${RULE('10.96.0.0/16')}`],
    });
    expect(render(save, target(['10.96.0.0/16']))).toBe(`*security
-D FORWARD -m comment --comment "route-controller: block forwarded traffic to Service CIDRs" -j ROUTE-CONTROLLER
-I FORWARD 1 -m comment --comment "route-controller: block forwarded traffic to Service CIDRs" -j ROUTE-CONTROLLER
COMMIT
`);
  });

  it('deletes foreign-looking jumps to our chain by their own spec, from any chain', () => {
    const save = securitySave({
      forward: ['-A FORWARD -j ROUTE-CONTROLLER', '-A FORWARD -i eth0 -g ROUTE-CONTROLLER'],
      ours: [`-A ROUTE-CONTROLLER ${RULE('10.96.0.0/16')}`],
      extra: ['[0:0] -A INPUT -i lo -j ROUTE-CONTROLLER'],
    });
    expect(render(save, target(['10.96.0.0/16']))).toBe(`*security
-D FORWARD -j ROUTE-CONTROLLER
-D FORWARD -i eth0 -g ROUTE-CONTROLLER
-D INPUT -i lo -j ROUTE-CONTROLLER
-I FORWARD 1 -m comment --comment "route-controller: block forwarded traffic to Service CIDRs" -j ROUTE-CONTROLLER
COMMIT
`);
  });

  it('rewrites the chain for an unexpected rule, merging duplicate CIDRs and their counters', () => {
    const save = securitySave({
      forward: [`-A FORWARD ${JUMP}`],
      ours: [
        `[3:180] -A ROUTE-CONTROLLER ${RULE('10.96.0.0/16')}`,
        `[2:120] -A ROUTE-CONTROLLER ${RULE('10.96.0.0/16')}`,
        '[1:60] -A ROUTE-CONTROLLER -d 10.97.0.0/16 -j ACCEPT',
      ],
    });
    expect(render(save, target(['10.96.0.0/16']))).toBe(`*security
:ROUTE-CONTROLLER - [0:0]
[5:300] -A ROUTE-CONTROLLER -d 10.96.0.0/16 -m comment --comment "route-controller: Service CIDR" -j DROP
COMMIT
`);
  });

  it('switches the action in filter (the fallback) by rewriting the chain, leaving a correct jump alone', () => {
    const fallback = fallbackSave([RULE('10.96.0.0/16')]);
    expect(render(fallback, target(['10.96.0.0/16'], 'reject'), 'filter')).toBe(`*filter
:ROUTE-CONTROLLER - [0:0]
[0:0] -A ROUTE-CONTROLLER -d 10.96.0.0/16 -m comment --comment "route-controller: Service CIDR" -j REJECT --reject-with icmp-admin-prohibited
COMMIT
`);
  });

  it('removal: every jump deleted, the chain flushed and deleted, in both tables', () => {
    expect(renderRemovalPayload(stateOf(`${BUSY_NODE_SECURITY}${BUSY_NODE_FILTER}`))).toBe(`*security
-D FORWARD -m comment --comment "route-controller: block forwarded traffic to Service CIDRs" -j ROUTE-CONTROLLER
-D FORWARD -m comment --comment "route-controller: block forwarded traffic to Service CIDRs" -j ROUTE-CONTROLLER
-F ROUTE-CONTROLLER
-X ROUTE-CONTROLLER
COMMIT
*filter
-D FORWARD -m comment --comment "route-controller: block forwarded traffic to Service CIDRs" -j ROUTE-CONTROLLER
-D FORWARD -m comment --comment "route-controller: block forwarded traffic to Service CIDRs" -j ROUTE-CONTROLLER
-F ROUTE-CONTROLLER
-X ROUTE-CONTROLLER
COMMIT
`);
    // An empty target is the same removal, whatever the placement.
    for (const placement of ['security', 'filter'] as const) {
      expect(render(`${BUSY_NODE_SECURITY}${BUSY_NODE_FILTER}`, target([]), placement)).toBe(
        renderRemovalPayload(stateOf(`${BUSY_NODE_SECURITY}${BUSY_NODE_FILTER}`)),
      );
    }
  });

  it('removal of a chain left without a jump (a crash between two older writes), and of the fallback', () => {
    const save = securitySave({ ours: [`-A ROUTE-CONTROLLER ${RULE('10.1.0.0/16')}`] });
    expect(renderRemovalPayload(stateOf(save))).toBe('*security\n-F ROUTE-CONTROLLER\n-X ROUTE-CONTROLLER\nCOMMIT\n');
    expect(renderRemovalPayload(stateOf(fallbackSave([RULE('10.1.0.0/16')])))).toBe(
      `*filter\n-D FORWARD ${FALLBACK_JUMP}\n-F ROUTE-CONTROLLER\n-X ROUTE-CONTROLLER\nCOMMIT\n`,
    );
  });

  it('nothing to write when in sync, or when removing from a clean family', () => {
    const save = installedSave([RULE('10.96.0.0/16'), RULE('10.100.0.0/24')]);
    expect(render(`${save}${EMPTY_FILTER}`, target(['10.100.0.0/24', '10.96.0.0/16']))).toBeUndefined();
    expect(render(fallbackSave([RULE('10.96.0.0/16')]), target(['10.96.0.0/16']), 'filter')).toBeUndefined();
    expect(renderRemovalPayload(stateOf(securitySave({ forward: ['-A FORWARD -j ACCEPT'] })))).toBeUndefined();
    expect(describeChange(stateOf(save), 'security', target(['10.96.0.0/16', '10.100.0.0/24']))).toBeUndefined();
  });

  it(`the most CIDRs a family may hold (${MAX_CIDRS_PER_FAMILY}) are one payload with one line each`, () => {
    const many = Array.from(
      { length: MAX_CIDRS_PER_FAMILY },
      (_, i) => `10.${64 + Math.floor(i / 256)}.${i % 256}.0/24`,
    );
    const payload = renderRestorePayload(fresh(), 'security', target(many)) ?? '';
    const lines = payload.trimEnd().split('\n');
    expect(lines).toHaveLength(1 + 1 + MAX_CIDRS_PER_FAMILY + 1 + 1);
    expect(lines.filter((line) => line.startsWith('[0:0] -A ROUTE-CONTROLLER -d '))).toHaveLength(MAX_CIDRS_PER_FAMILY);
  });

  it('a custom chain name is used everywhere', () => {
    const payload = renderRestorePayload(fresh('ipv4', 'RC-TEST'), 'security', target(['10.96.0.0/16']));
    expect(payload).toContain(':RC-TEST - [0:0]\n[0:0] -A RC-TEST -d 10.96.0.0/16');
    expect(payload).toContain(
      '-I FORWARD 1 -m comment --comment "route-controller: block forwarded traffic to Service CIDRs" -j RC-TEST',
    );
  });
});

describe('restore command', () => {
  it('runs the flavour and family binary with --noflush, --counters and the lock wait', () => {
    expect(restoreCommand('legacy', 'ipv6', 'X', { lockWaitSeconds: 5 })).toEqual({
      file: 'ip6tables-legacy-restore',
      args: ['--noflush', '--counters', '-w', '5'],
      input: 'X',
    });
    expect(restoreCommand('nft', 'ipv4', 'X', { lockWaitSeconds: 2 }).file).toBe('iptables-nft-restore');
    expect(restoreTimeoutMs({ lockWaitSeconds: 5 })).toBeGreaterThan(5000);
  });

  it('describes each change in one line', () => {
    expect(describeChange(fresh(), 'security', target(['10.96.0.0/16']))).toBe(
      'ipv4: create chain ROUTE-CONTROLLER in security with 1 CIDR (drop); insert the jump at position 1 of security FORWARD',
    );
    expect(describeChange(stateOf(BUSY_NODE_SECURITY), 'security', target(['10.96.0.0/16', '10.1.0.0/16']))).toBe(
      'ipv4: replace 2 jumps with one at position 1 of security FORWARD',
    );
    expect(describeChange(stateOf(BUSY_NODE_SECURITY), 'security', target(['10.96.0.0/16', '10.100.0.0/24']))).toBe(
      'ipv4: update chain ROUTE-CONTROLLER in security: add 1 rule, delete 1; replace 2 jumps with one at position 1 of security FORWARD',
    );
    expect(
      describeChange(stateOf(installedSave([RULE('10.96.0.0/16')])), 'filter', target(['10.96.0.0/16'], 'reject')),
    ).toBe(
      'ipv4: create chain ROUTE-CONTROLLER in filter with 1 CIDR (reject); insert the jump at position 1 of filter FORWARD; remove chain ROUTE-CONTROLLER from security; delete 1 jump to it from security',
    );
    expect(describeChange(stateOf(BUSY_NODE_SECURITY), 'security', target([]))).toBe(
      'ipv4: remove chain ROUTE-CONTROLLER from security; delete 2 jumps to it from security',
    );
    expect(describeChange(stateOf(oldLayoutSave([RULE('10.96.0.0/16')])), 'security', target(['10.96.0.0/16']))).toBe(
      "ipv4: create chain ROUTE-CONTROLLER in security with 1 CIDR (drop); insert the jump at position 1 of security FORWARD; remove chain ROUTE-CONTROLLER from filter (route-controller 0.1.0's); delete 1 jump to it from filter",
    );
  });
});

describe('drift problems and sync decisions', () => {
  it('names a pushed-down, duplicated jump', () => {
    const observed = observedState(stateOf(BUSY_NODE_SECURITY), fresh('ipv6'), SECURE);
    expect(observed.problems).toEqual(['ipv4: 2 jumps to ROUTE-CONTROLLER in security FORWARD (positions 2, 4)']);
    expect(observed.ipv4.cidrs.map((c) => c.text)).toEqual(['10.1.0.0/16', '10.96.0.0/16']);
    expect(observed.ipv4.counters).toEqual({ packets: 40, bytes: 2400 });
    expect(observed.ipv6).toEqual({ cidrs: [] });
    expect(observed.action).toBe('drop');
  });

  it("reports 0.1.0's layout in filter as drift, with its rules and counters, until the first apply", () => {
    const old = oldLayoutSave([`[7:420] ${RULE('10.96.0.0/16')}`]);
    const observed = observedState(stateOf(old), fresh('ipv6'), SECURE);
    expect(observed.present).toBe(true);
    expect(observed.ipv4).toEqual({ cidrs: cidrs('10.96.0.0/16'), counters: { packets: 7, bytes: 420 } });
    expect(observed.problems).toEqual([
      "ipv4: chain ROUTE-CONTROLLER, a jump to it at position 1 of FORWARD in table filter: route-controller 0.1.0's layout, which drops before kube-proxy's REJECT; the next apply removes it",
    ]);
    // The same objects beside a correct security layout: still drift, never in sync.
    const both = observedState(stateOf(`${installedSave([RULE('10.96.0.0/16')])}${old}`), fresh('ipv6'), SECURE);
    expect(both.problems).toHaveLength(1);
    expect(isInSync(both, desired(['10.96.0.0/16']))).toBe(false);
  });

  it('judges the fallback layout against the placement: in place in the fallback, drift where security works', () => {
    const state = stateOf(fallbackSave([RULE('10.96.0.0/16')]));
    expect(observedState(state, fresh('ipv6'), { ipv4: 'filter', ipv6: 'security' }).problems).toEqual([]);
    expect(observedState(state, fresh('ipv6'), SECURE).problems).toEqual([
      'ipv4: chain ROUTE-CONTROLLER, a jump to it at position 1 of FORWARD in table filter: filter FORWARD, though the security table can be used; the next apply removes it',
    ]);
  });

  it('names each kind of drift', () => {
    const save = securitySave({
      forward: ['-A FORWARD -j ACCEPT', '-A FORWARD -j ROUTE-CONTROLLER'],
      ours: [
        `-A ROUTE-CONTROLLER ${RULE('10.96.0.0/16')}`,
        `-A ROUTE-CONTROLLER ${RULE('10.96.0.0/16')}`,
        '-A ROUTE-CONTROLLER -d 10.97.0.0/16 -j ACCEPT',
        `-A ROUTE-CONTROLLER ${RULE('0.0.0.0/1')}`,
      ],
      extra: ['[0:0] -A INPUT -j ROUTE-CONTROLLER'],
    });
    expect(observedState(stateOf(save), fresh('ipv6'), SECURE).problems).toEqual([
      'ipv4: jump to ROUTE-CONTROLLER is at position 2 of security FORWARD',
      'ipv4: jump to ROUTE-CONTROLLER at position 2 of security FORWARD is not ours: -j ROUTE-CONTROLLER',
      'ipv4: jump to ROUTE-CONTROLLER from security INPUT: -j ROUTE-CONTROLLER',
      'ipv4: unexpected rule in ROUTE-CONTROLLER: -d 10.97.0.0/16 -j ACCEPT',
      'ipv4: unexpected rule in ROUTE-CONTROLLER: -d 0.0.0.0/1 -m comment --comment "route-controller: Service CIDR" -j DROP',
      'ipv4: 10.96.0.0/16 appears 2 times in ROUTE-CONTROLLER',
    ]);
    const noJump = securitySave({ ours: [] });
    expect(observedState(fresh(), stateOf(noJump, 'ipv6'), SECURE).problems).toEqual([
      'ipv6: chain ROUTE-CONTROLLER holds no rules',
      'ipv6: chain ROUTE-CONTROLLER has no jump from security FORWARD',
    ]);
  });

  it('reports mixed actions as null', () => {
    const save = installedSave([
      RULE('10.96.0.0/16'),
      RULE('10.97.0.0/16', '-j REJECT --reject-with icmp-admin-prohibited'),
    ]);
    const observed = observedState(stateOf(save), fresh('ipv6'), SECURE);
    expect(observed.action).toBeNull();
    expect(observed.problems).toEqual([]);
  });

  it('a reject rule with another ICMP type is not ours', () => {
    const save = installedSave([RULE('10.96.0.0/16', '-j REJECT --reject-with icmp-port-unreachable')]);
    expect(stateOf(save).security.unexpected).toHaveLength(1);
  });

  // Whatever the kernel holds, "a family needs a write" and core's isInSync must agree, or apply
  // would write on every resync (or never repair).
  const v4Saves: Record<string, string> = {
    nothing: EMPTY_FILTER,
    installed: installedSave([RULE('10.96.0.0/16')]),
    installedTwo: installedSave([RULE('10.96.0.0/16'), RULE('10.100.0.0/24')]),
    // Reject rules in security: what no apply writes (the kernel refuses REJECT there), as drift.
    rejectInSecurity: installedSave([RULE('10.96.0.0/16', '-j REJECT --reject-with icmp-admin-prohibited')]),
    installedReject: fallbackSave([RULE('10.96.0.0/16', '-j REJECT --reject-with icmp-admin-prohibited')]),
    busy: BUSY_NODE_SECURITY,
    old: oldLayoutSave([RULE('10.96.0.0/16')]),
    installedAndOld: `${installedSave([RULE('10.96.0.0/16')])}${oldLayoutSave([RULE('10.96.0.0/16')])}`,
    fallback: fallbackSave([RULE('10.96.0.0/16')]),
    chainOnly: securitySave({ ours: [] }),
    emptyChainWithJump: securitySave({ forward: [`-A FORWARD ${JUMP}`], ours: [] }),
  };
  const v6Saves: Record<string, string> = {
    nothing: EMPTY_FILTER,
    installed: installedSave([RULE('fd00:10:96::/112')]),
    fallback: fallbackSave([RULE('fd00:10:96::/112')]),
    emptyChainWithJump: securitySave({ forward: [`-A FORWARD ${JUMP}`], ours: [] }),
  };
  const wants = [
    desired([]),
    desired(['10.96.0.0/16']),
    desired(['10.96.0.0/16'], 'reject'),
    desired(['10.96.0.0/16', '10.100.0.0/24']),
    desired(['10.96.0.0/16', 'fd00:10:96::/112']),
    desired(['fd00:10:96::/112']),
  ];
  const placements: Record<string, Readonly<Record<IpFamily, Placement>>> = {
    security: SECURE,
    'ipv4 fallback': { ipv4: 'filter', ipv6: 'security' },
    'ipv6 fallback': { ipv4: 'security', ipv6: 'filter' },
  };
  for (const [v4Name, v4Save] of Object.entries(v4Saves)) {
    for (const [v6Name, v6Save] of Object.entries(v6Saves)) {
      it(`agrees with core's isInSync: ipv4 ${v4Name}, ipv6 ${v6Name}, every placement`, () => {
        const v4 = stateOf(v4Save, 'ipv4');
        const v6 = stateOf(v6Save, 'ipv6');
        for (const [name, placement] of Object.entries(placements)) {
          const observed = observedState(v4, v6, placement);
          for (const want of wants) {
            const writes = [
              renderRestorePayload(v4, tableFor(want.action, placement.ipv4), {
                cidrs: want.cidrs.ipv4,
                action: want.action,
              }),
              renderRestorePayload(v6, tableFor(want.action, placement.ipv6), {
                cidrs: want.cidrs.ipv6,
                action: want.action,
              }),
            ].filter((payload) => payload !== undefined);
            expect(writes.length === 0, `${name}: ${JSON.stringify(want.cidrs.ipv4.map((c) => c.text))}`).toBe(
              isInSync(observed, want),
            );
          }
        }
      });
    }
  }
});
