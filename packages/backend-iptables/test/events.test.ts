import { classifyMonitorLine, describeMonitorLine } from '@route-controller/backend-nft/monitor';
import type { ChangeListener } from '@route-controller/core';
import { anyOrder, desired, FakeCommandRunner, FakeStreamRunner } from '@route-controller/core/testing';
import { describe, expect, it } from 'vitest';
import type { IptablesTable } from '../src/constants.js';
import { isIptablesLine } from '../src/events.js';
import { IptablesBackend } from '../src/iptables-backend.js';
import { familyReads, restoreWrite, securityMissing } from './samples.js';

// Lines as `nft -j monitor ruleset` 1.0.6 prints them for iptables-nft's changes, in `table`.
const about = (table: IptablesTable) => [
  // iptables-nft -t <table> -I FORWARD 1 -j ACCEPT
  `{"insert": {"rule": {"family": "ip", "table": "${table}", "chain": "FORWARD", "handle": 2, "expr": [{"counter": {"packets": 0, "bytes": 0}}, {"accept": null}]}}}`,
  // iptables-nft -F FORWARD, in ip6
  `{"delete": {"rule": {"family": "ip6", "table": "${table}", "chain": "FORWARD", "handle": 3, "expr": [{"accept": null}]}}}`,
  // iptables-nft -P FORWARD DROP
  `{"add": {"chain": {"family": "ip", "table": "${table}", "name": "FORWARD", "handle": 3, "type": "filter", "hook": "forward", "prio": 0, "policy": "drop"}}}`,
  // our chain, a rule in it, a flushed ruleset deleting the table, the table made anew
  `{"create": {"chain": {"family": "ip", "table": "${table}", "name": "ROUTE-CONTROLLER", "handle": 1}}}`,
  `{"delete": {"rule": {"family": "ip", "table": "${table}", "chain": "ROUTE-CONTROLLER", "handle": 5, "expr": []}}}`,
  `{"delete": {"table": {"family": "ip", "name": "${table}", "handle": 25}}}`,
  `{"add": {"table": {"family": "ip6", "name": "${table}", "handle": 26}}}`,
];
const OTHERS = [
  // kube-proxy's sync rewrites KUBE-FORWARD: an unquoted FORWARD needle would match it every time.
  '{"delete": {"rule": {"family": "ip", "table": "filter", "chain": "KUBE-FORWARD", "handle": 10, "expr": [{"xt": {"type": "match", "name": "conntrack"}}, {"counter": {"packets": 0, "bytes": 0}}, {"drop": null}]}}}',
  '{"add": {"rule": {"family": "ip", "table": "nat", "chain": "POSTROUTING", "handle": 4, "expr": [{"xt": {"type": "target", "name": "MASQUERADE"}}]}}}',
  '{"add": {"table": {"family": "ip", "name": "nat", "handle": 20}}}',
  // native tables: another family, or a table that is not iptables'
  '{"delete": {"rule": {"family": "inet", "table": "security", "chain": "FORWARD", "handle": 4, "expr": []}}}',
  '{"add": {"chain": {"family": "ip", "table": "kube-proxy", "name": "forward", "handle": 2}}}',
  '{"delete": {"table": {"family": "inet", "name": "route-controller", "handle": 11}}}',
];

describe("the iptables backend's monitor lines", () => {
  const classifier = (tables: readonly IptablesTable[]) =>
    classifyMonitorLine(isIptablesLine('ROUTE-CONTROLLER', () => tables));

  it('calls ours what touches ip/ip6 security itself, its FORWARD chain or our chain', () => {
    const classify = classifier(['security']);
    expect(about('security').map(classify)).toEqual(about('security').map(() => 'ours'));
  });

  it("calls other filter's changes (kube-proxy's, the CNI's ACCEPTs: they cannot stop a later chain), other tables and other families", () => {
    const classify = classifier(['security']);
    expect([...about('filter'), ...OTHERS].map(classify)).toEqual([...about('filter'), ...OTHERS].map(() => 'other'));
  });

  it("in the fallback, filter's FORWARD and our chain there are ours, and security's are not", () => {
    const classify = classifier(['filter']);
    expect(about('filter').map(classify)).toEqual(about('filter').map(() => 'ours'));
    expect(about('security').map(classify)).toEqual(about('security').map(() => 'other'));
    expect(OTHERS.map(classify)).toEqual(OTHERS.map(() => 'other'));
  });

  it('describes what changed', () => {
    const [insert, , policy, , , deleted] = about('security');
    expect(describeMonitorLine(insert as string)).toBe('insert rule ip security FORWARD');
    expect(describeMonitorLine(policy as string)).toBe('add chain ip security FORWARD');
    expect(describeMonitorLine(deleted as string)).toBe('delete table ip security');
  });
});

describe('IptablesBackend.watchChanges', () => {
  const listener = (seen: string[]): ChangeListener => ({
    ready: () => {},
    change: (what) => seen.push(what),
    other: () => seen.push('other'),
    lost: (detail) => seen.push(detail),
    diagnostic: () => {},
  });

  it('nft mode: follows nft -j monitor ruleset, reporting changes to the security table', async () => {
    const streams = new FakeStreamRunner();
    const backend = new IptablesBackend({ mode: 'nft', runner: new FakeCommandRunner(), streams });
    const seen: string[] = [];
    const controller = new AbortController();
    const watching = backend.watchChanges(listener(seen), controller.signal);
    expect(streams.current?.command).toBe('nft -j monitor ruleset');
    streams.current?.emit(OTHERS[0] as string, about('filter')[0] as string, about('security')[0] as string);
    streams.current?.end({ exitCode: 134 });
    expect(await watching).toEqual({ stopped: false, reason: 'nft -j monitor ruleset exited with code 134' });
    expect(seen).toEqual(['other', 'other', 'insert rule ip security FORWARD']);
  });

  it('follows a fallback decided while the stream runs: filter FORWARD is ours from then on', async () => {
    const streams = new FakeStreamRunner();
    const runner = new FakeCommandRunner([
      anyOrder(...familyReads('nft', 'ipv4'), ...familyReads('nft', 'ipv6')),
      restoreWrite('nft', 'ipv4', (input) => input?.startsWith('*security') === true, securityMissing('ipv4')),
      anyOrder(...familyReads('nft', 'ipv4'), ...familyReads('nft', 'ipv6')),
      restoreWrite('nft', 'ipv4', (input) => input?.startsWith('*filter') === true),
    ]);
    const backend = new IptablesBackend({ mode: 'nft', runner, streams });
    const seen: string[] = [];
    const watching = backend.watchChanges(listener(seen), new AbortController().signal);
    streams.current?.emit(about('filter')[0] as string);
    await new Promise((resolve) => setTimeout(resolve, 0));
    await backend.apply(desired(['10.96.0.0/16']));
    runner.assertDone();
    streams.current?.emit(about('filter')[0] as string);
    streams.current?.end({ exitCode: 0 });
    await watching;
    expect(seen).toEqual(['other', 'insert rule ip filter FORWARD']);
  });

  it('with the reject action, whose rules live in filter, filter FORWARD is ours', async () => {
    const streams = new FakeStreamRunner();
    const runner = new FakeCommandRunner([
      anyOrder(...familyReads('nft', 'ipv4'), ...familyReads('nft', 'ipv6')),
      restoreWrite('nft', 'ipv4', (input) => input?.startsWith('*filter') === true),
    ]);
    const backend = new IptablesBackend({ mode: 'nft', runner, streams });
    const seen: string[] = [];
    const watching = backend.watchChanges(listener(seen), new AbortController().signal);
    await backend.apply(desired(['10.96.0.0/16'], 'reject'));
    runner.assertDone();
    streams.current?.emit(about('filter')[0] as string, about('security')[0] as string);
    streams.current?.end({ exitCode: 0 });
    await watching;
    expect(seen).toEqual(['insert rule ip filter FORWARD', 'other']);
  });

  it('legacy mode: refuses, as legacy changes notify nobody', async () => {
    const streams = new FakeStreamRunner();
    const backend = new IptablesBackend({ mode: 'legacy', runner: new FakeCommandRunner(), streams });
    expect(backend.capabilities.events).toBe(false);
    await expect(backend.watchChanges(listener([]), new AbortController().signal)).rejects.toMatchObject({
      code: 'ERR_RC_FIREWALL_UNSUPPORTED',
    });
    expect(streams.started).toEqual([]);
  });
});
