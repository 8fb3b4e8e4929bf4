import { type BlockAction, type Cidr, type IpFamily, isInSync, parseCidr } from '@route-controller/core';
import { desired } from '@route-controller/core/testing';
import { describe, expect, it } from 'vitest';
import { absentFamilyState, familyStateFromSave, observedState } from '../src/chain-state.js';
import { parseSave } from '../src/parse-save.js';
import {
  describeChange,
  renderRemovalPayload,
  renderRestorePayload,
  restoreCommand,
  restoreTimeoutMs,
} from '../src/render.js';
import { BUSY_NODE_FILTER, filterSave, installedSave, JUMP, RULE } from './samples.js';

const cidrs = (...texts: string[]): Cidr[] => texts.map((text) => parseCidr(text).cidr);
const stateOf = (save: string, family: IpFamily = 'ipv4') =>
  familyStateFromSave(parseSave(save), family, 'ROUTE-CONTROLLER');
const target = (texts: string[], action: BlockAction = 'drop') => ({ cidrs: cidrs(...texts), action });

describe('restore payloads (golden)', () => {
  it('fresh install, IPv4, drop', () => {
    const payload = renderRestorePayload(
      absentFamilyState('ipv4', 'ROUTE-CONTROLLER'),
      target(['10.96.0.0/16', '10.100.0.0/24']),
    );
    expect(payload).toBe(`*filter
:ROUTE-CONTROLLER - [0:0]
[0:0] -A ROUTE-CONTROLLER -d 10.96.0.0/16 -m comment --comment "route-controller: Service CIDR" -j DROP
[0:0] -A ROUTE-CONTROLLER -d 10.100.0.0/24 -m comment --comment "route-controller: Service CIDR" -j DROP
-I FORWARD 1 -m comment --comment "route-controller: block forwarded traffic to Service CIDRs" -j ROUTE-CONTROLLER
COMMIT
`);
  });

  it('fresh install, IPv4, reject with icmp-admin-prohibited', () => {
    expect(
      renderRestorePayload(absentFamilyState('ipv4', 'ROUTE-CONTROLLER'), target(['10.96.0.0/16'], 'reject')),
    ).toBe(`*filter
:ROUTE-CONTROLLER - [0:0]
[0:0] -A ROUTE-CONTROLLER -d 10.96.0.0/16 -m comment --comment "route-controller: Service CIDR" -j REJECT --reject-with icmp-admin-prohibited
-I FORWARD 1 -m comment --comment "route-controller: block forwarded traffic to Service CIDRs" -j ROUTE-CONTROLLER
COMMIT
`);
  });

  it('fresh install, IPv6, drop and reject with icmp6-adm-prohibited', () => {
    const state = absentFamilyState('ipv6', 'ROUTE-CONTROLLER');
    expect(renderRestorePayload(state, target(['fd00:10:96::/112', 'fd00:aaaa::/64']))).toBe(`*filter
:ROUTE-CONTROLLER - [0:0]
[0:0] -A ROUTE-CONTROLLER -d fd00:10:96::/112 -m comment --comment "route-controller: Service CIDR" -j DROP
[0:0] -A ROUTE-CONTROLLER -d fd00:aaaa::/64 -m comment --comment "route-controller: Service CIDR" -j DROP
-I FORWARD 1 -m comment --comment "route-controller: block forwarded traffic to Service CIDRs" -j ROUTE-CONTROLLER
COMMIT
`);
    expect(renderRestorePayload(state, target(['fd00:10:96::/112'], 'reject'))).toBe(`*filter
:ROUTE-CONTROLLER - [0:0]
[0:0] -A ROUTE-CONTROLLER -d fd00:10:96::/112 -m comment --comment "route-controller: Service CIDR" -j REJECT --reject-with icmp6-adm-prohibited
-I FORWARD 1 -m comment --comment "route-controller: block forwarded traffic to Service CIDRs" -j ROUTE-CONTROLLER
COMMIT
`);
  });

  it('repairs a busy node: stale CIDR deleted, new one appended, kept rule untouched; duplicate pushed-down jump replaced', () => {
    expect(renderRestorePayload(stateOf(BUSY_NODE_FILTER), target(['10.96.0.0/16', '10.100.0.0/24']))).toBe(`*filter
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
    expect(renderRestorePayload(stateOf(save), target(['10.96.0.0/16', '10.97.0.0/16']))).toBe(`*filter
-D ROUTE-CONTROLLER -d 10.96.0.0/16 -m comment --comment "route-controller: Service CIDR" -j DROP
-D ROUTE-CONTROLLER -d 10.98.0.0/16 -m comment --comment "route-controller: Service CIDR" -j DROP
-A ROUTE-CONTROLLER -d 10.97.0.0/16 -m comment --comment "route-controller: Service CIDR" -j DROP
COMMIT
`);
  });

  it('rewrites with carried counters when no rule stays', () => {
    const save = filterSave({
      forward: [`-A FORWARD ${JUMP}`],
      ours: [`[9:540] -A ROUTE-CONTROLLER ${RULE('10.96.0.0/16')}`],
    });
    expect(renderRestorePayload(stateOf(save), target(['10.96.0.0/16', '10.97.0.0/16'], 'reject'))).toBe(`*filter
:ROUTE-CONTROLLER - [0:0]
[9:540] -A ROUTE-CONTROLLER -d 10.96.0.0/16 -m comment --comment "route-controller: Service CIDR" -j REJECT --reject-with icmp-admin-prohibited
[0:0] -A ROUTE-CONTROLLER -d 10.97.0.0/16 -m comment --comment "route-controller: Service CIDR" -j REJECT --reject-with icmp-admin-prohibited
COMMIT
`);
    expect(renderRestorePayload(stateOf(save), target(['10.200.0.0/16']))).toBe(`*filter
:ROUTE-CONTROLLER - [0:0]
[0:0] -A ROUTE-CONTROLLER -d 10.200.0.0/16 -m comment --comment "route-controller: Service CIDR" -j DROP
COMMIT
`);
  });

  it('only moves the jump when the chain is right but someone inserted an ACCEPT above it', () => {
    const save = filterSave({
      forward: ['-A FORWARD -s 10.244.0.0/16 -j ACCEPT', `-A FORWARD ${JUMP}`],
      ours: [`[7:420] -A ROUTE-CONTROLLER ${RULE('10.96.0.0/16')}`],
    });
    expect(renderRestorePayload(stateOf(save), target(['10.96.0.0/16']))).toBe(`*filter
-D FORWARD -m comment --comment "route-controller: block forwarded traffic to Service CIDRs" -j ROUTE-CONTROLLER
-I FORWARD 1 -m comment --comment "route-controller: block forwarded traffic to Service CIDRs" -j ROUTE-CONTROLLER
COMMIT
`);
  });

  it('deletes foreign-looking jumps to our chain by their own spec, from any chain', () => {
    const save = filterSave({
      forward: ['-A FORWARD -j ROUTE-CONTROLLER', '-A FORWARD -i eth0 -g ROUTE-CONTROLLER'],
      ours: [`-A ROUTE-CONTROLLER ${RULE('10.96.0.0/16')}`],
      extra: ['[0:0] -A INPUT -i lo -j ROUTE-CONTROLLER'],
    });
    expect(renderRestorePayload(stateOf(save), target(['10.96.0.0/16']))).toBe(`*filter
-D FORWARD -j ROUTE-CONTROLLER
-D FORWARD -i eth0 -g ROUTE-CONTROLLER
-D INPUT -i lo -j ROUTE-CONTROLLER
-I FORWARD 1 -m comment --comment "route-controller: block forwarded traffic to Service CIDRs" -j ROUTE-CONTROLLER
COMMIT
`);
  });

  it('rewrites the chain for an unexpected rule, merging duplicate CIDRs and their counters', () => {
    const save = filterSave({
      forward: [`-A FORWARD ${JUMP}`],
      ours: [
        `[3:180] -A ROUTE-CONTROLLER ${RULE('10.96.0.0/16')}`,
        `[2:120] -A ROUTE-CONTROLLER ${RULE('10.96.0.0/16')}`,
        '[1:60] -A ROUTE-CONTROLLER -d 10.97.0.0/16 -j ACCEPT',
      ],
    });
    expect(renderRestorePayload(stateOf(save), target(['10.96.0.0/16']))).toBe(`*filter
:ROUTE-CONTROLLER - [0:0]
[5:300] -A ROUTE-CONTROLLER -d 10.96.0.0/16 -m comment --comment "route-controller: Service CIDR" -j DROP
COMMIT
`);
  });

  it('switches the action by rewriting the chain, leaving a correct jump alone', () => {
    const payload = renderRestorePayload(
      stateOf(installedSave([RULE('10.96.0.0/16')])),
      target(['10.96.0.0/16'], 'reject'),
    );
    expect(payload).toBe(`*filter
:ROUTE-CONTROLLER - [0:0]
[0:0] -A ROUTE-CONTROLLER -d 10.96.0.0/16 -m comment --comment "route-controller: Service CIDR" -j REJECT --reject-with icmp-admin-prohibited
COMMIT
`);
  });

  it('removal: deletes every jump, flushes and deletes the chain', () => {
    expect(renderRemovalPayload(stateOf(BUSY_NODE_FILTER))).toBe(`*filter
-D FORWARD -m comment --comment "route-controller: block forwarded traffic to Service CIDRs" -j ROUTE-CONTROLLER
-D FORWARD -m comment --comment "route-controller: block forwarded traffic to Service CIDRs" -j ROUTE-CONTROLLER
-F ROUTE-CONTROLLER
-X ROUTE-CONTROLLER
COMMIT
`);
    // An empty target is the same removal.
    expect(renderRestorePayload(stateOf(BUSY_NODE_FILTER), target([]))).toBe(
      renderRemovalPayload(stateOf(BUSY_NODE_FILTER)),
    );
  });

  it('removal of a chain left without a jump (a crash between two older writes)', () => {
    const save = filterSave({ ours: [`-A ROUTE-CONTROLLER ${RULE('10.1.0.0/16')}`] });
    expect(renderRemovalPayload(stateOf(save))).toBe('*filter\n-F ROUTE-CONTROLLER\n-X ROUTE-CONTROLLER\nCOMMIT\n');
  });

  it('nothing to write when in sync, or when removing from a clean family', () => {
    const save = installedSave([RULE('10.96.0.0/16'), RULE('10.100.0.0/24')]);
    expect(renderRestorePayload(stateOf(save), target(['10.100.0.0/24', '10.96.0.0/16']))).toBeUndefined();
    expect(renderRemovalPayload(stateOf(filterSave({ forward: ['-A FORWARD -j ACCEPT'] })))).toBeUndefined();
    expect(describeChange(stateOf(save), target(['10.96.0.0/16', '10.100.0.0/24']))).toBeUndefined();
  });

  it('1,000 CIDRs fit one payload with one line each', () => {
    const many = Array.from({ length: 1000 }, (_, i) => `10.${64 + Math.floor(i / 256)}.${i % 256}.0/24`);
    const payload = renderRestorePayload(absentFamilyState('ipv4', 'ROUTE-CONTROLLER'), target(many)) ?? '';
    const lines = payload.trimEnd().split('\n');
    expect(lines).toHaveLength(1 + 1 + 1000 + 1 + 1);
    expect(lines.filter((line) => line.startsWith('[0:0] -A ROUTE-CONTROLLER -d '))).toHaveLength(1000);
  });

  it('a custom chain name is used everywhere', () => {
    const payload = renderRestorePayload(absentFamilyState('ipv4', 'RC-TEST'), target(['10.96.0.0/16']));
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
    expect(describeChange(absentFamilyState('ipv4', 'ROUTE-CONTROLLER'), target(['10.96.0.0/16']))).toBe(
      'ipv4: create chain ROUTE-CONTROLLER with 1 CIDR (drop); insert the jump at position 1 of FORWARD',
    );
    expect(describeChange(stateOf(BUSY_NODE_FILTER), target(['10.96.0.0/16', '10.1.0.0/16']))).toBe(
      'ipv4: replace 2 jumps with one at position 1 of FORWARD',
    );
    expect(describeChange(stateOf(BUSY_NODE_FILTER), target(['10.96.0.0/16', '10.100.0.0/24']))).toBe(
      'ipv4: update chain ROUTE-CONTROLLER: add 1 rule, delete 1; replace 2 jumps with one at position 1 of FORWARD',
    );
    expect(describeChange(stateOf(installedSave([RULE('10.96.0.0/16')])), target(['10.96.0.0/16'], 'reject'))).toBe(
      'ipv4: rewrite chain ROUTE-CONTROLLER with 1 CIDR (reject)',
    );
    expect(describeChange(stateOf(BUSY_NODE_FILTER), target([]))).toBe(
      'ipv4: remove chain ROUTE-CONTROLLER; delete 2 jumps to it',
    );
  });
});

describe('drift problems and sync decisions', () => {
  it('names a pushed-down, duplicated jump', () => {
    const observed = observedState(stateOf(BUSY_NODE_FILTER), absentFamilyState('ipv6', 'ROUTE-CONTROLLER'));
    expect(observed.problems).toEqual(['ipv4: 2 jumps to ROUTE-CONTROLLER in FORWARD (positions 2, 5)']);
    expect(observed.ipv4.cidrs.map((c) => c.text)).toEqual(['10.1.0.0/16', '10.96.0.0/16']);
    expect(observed.ipv4.counters).toEqual({ packets: 40, bytes: 2400 });
    expect(observed.ipv6).toEqual({ cidrs: [] });
    expect(observed.action).toBe('drop');
  });

  it('names each kind of drift', () => {
    const save = filterSave({
      forward: ['-A FORWARD -j ACCEPT', '-A FORWARD -j ROUTE-CONTROLLER'],
      ours: [
        `-A ROUTE-CONTROLLER ${RULE('10.96.0.0/16')}`,
        `-A ROUTE-CONTROLLER ${RULE('10.96.0.0/16')}`,
        '-A ROUTE-CONTROLLER -d 10.97.0.0/16 -j ACCEPT',
        `-A ROUTE-CONTROLLER ${RULE('0.0.0.0/1')}`,
      ],
      extra: ['[0:0] -A INPUT -j ROUTE-CONTROLLER'],
    });
    expect(observedState(stateOf(save), absentFamilyState('ipv6', 'ROUTE-CONTROLLER')).problems).toEqual([
      'ipv4: jump to ROUTE-CONTROLLER is at position 2 of FORWARD',
      'ipv4: jump to ROUTE-CONTROLLER at position 2 of FORWARD is not ours: -j ROUTE-CONTROLLER',
      'ipv4: jump to ROUTE-CONTROLLER from INPUT: -j ROUTE-CONTROLLER',
      'ipv4: unexpected rule in ROUTE-CONTROLLER: -d 10.97.0.0/16 -j ACCEPT',
      'ipv4: unexpected rule in ROUTE-CONTROLLER: -d 0.0.0.0/1 -m comment --comment "route-controller: Service CIDR" -j DROP',
      'ipv4: 10.96.0.0/16 appears 2 times in ROUTE-CONTROLLER',
    ]);
    const noJump = filterSave({ ours: [] });
    expect(observedState(absentFamilyState('ipv4', 'ROUTE-CONTROLLER'), stateOf(noJump, 'ipv6')).problems).toEqual([
      'ipv6: chain ROUTE-CONTROLLER holds no rules',
      'ipv6: chain ROUTE-CONTROLLER has no jump from FORWARD',
    ]);
  });

  it('reports mixed actions as null', () => {
    const save = installedSave([
      RULE('10.96.0.0/16'),
      RULE('10.97.0.0/16', '-j REJECT --reject-with icmp-admin-prohibited'),
    ]);
    const observed = observedState(stateOf(save), absentFamilyState('ipv6', 'ROUTE-CONTROLLER'));
    expect(observed.action).toBeNull();
    expect(observed.problems).toEqual([]);
  });

  it('a reject rule with another ICMP type is not ours', () => {
    const save = installedSave([RULE('10.96.0.0/16', '-j REJECT --reject-with icmp-port-unreachable')]);
    expect(stateOf(save).unexpected).toHaveLength(1);
  });

  // Whatever the kernel holds, "a family needs a write" and core's isInSync must agree, or apply
  // would write on every resync (or never repair).
  const v4Saves: Record<string, string> = {
    nothing: filterSave({}),
    installed: installedSave([RULE('10.96.0.0/16')]),
    installedTwo: installedSave([RULE('10.96.0.0/16'), RULE('10.100.0.0/24')]),
    installedReject: installedSave([RULE('10.96.0.0/16', '-j REJECT --reject-with icmp-admin-prohibited')]),
    busy: BUSY_NODE_FILTER,
    chainOnly: filterSave({ ours: [] }),
    emptyChainWithJump: filterSave({ forward: [`-A FORWARD ${JUMP}`], ours: [] }),
  };
  const v6Saves: Record<string, string> = {
    nothing: filterSave({}),
    installed: installedSave([RULE('fd00:10:96::/112')]),
    emptyChainWithJump: filterSave({ forward: [`-A FORWARD ${JUMP}`], ours: [] }),
  };
  const wants = [
    desired([]),
    desired(['10.96.0.0/16']),
    desired(['10.96.0.0/16'], 'reject'),
    desired(['10.96.0.0/16', '10.100.0.0/24']),
    desired(['10.96.0.0/16', 'fd00:10:96::/112']),
    desired(['fd00:10:96::/112']),
  ];
  for (const [v4Name, v4Save] of Object.entries(v4Saves)) {
    for (const [v6Name, v6Save] of Object.entries(v6Saves)) {
      it(`agrees with core's isInSync: ipv4 ${v4Name}, ipv6 ${v6Name}`, () => {
        const v4 = stateOf(v4Save, 'ipv4');
        const v6 = stateOf(v6Save, 'ipv6');
        const observed = observedState(v4, v6);
        for (const want of wants) {
          const writes = [
            renderRestorePayload(v4, { cidrs: want.cidrs.ipv4, action: want.action }),
            renderRestorePayload(v6, { cidrs: want.cidrs.ipv6, action: want.action }),
          ].filter((payload) => payload !== undefined);
          expect(writes.length === 0, JSON.stringify(want.cidrs.ipv4.map((c) => c.text))).toBe(
            isInSync(observed, want),
          );
        }
      });
    }
  }
});
