import type { ChangeListener } from '@route-controller/core';
import { FakeCommandRunner, FakeStreamRunner } from '@route-controller/core/testing';
import { describe, expect, it } from 'vitest';
import { classifyIptablesMonitorLine, describeIptablesMonitorLine } from '../src/events.js';
import { IptablesBackend } from '../src/iptables-backend.js';

// Lines as `nft -j monitor ruleset` 1.0.6 prints them for iptables-nft's changes (see the notes).
const OURS = [
  // iptables-nft -I FORWARD 1 -j ACCEPT
  '{"insert": {"rule": {"family": "ip", "table": "filter", "chain": "FORWARD", "handle": 2, "expr": [{"counter": {"packets": 0, "bytes": 0}}, {"accept": null}]}}}',
  // iptables-nft -F FORWARD, in ip6
  '{"delete": {"rule": {"family": "ip6", "table": "filter", "chain": "FORWARD", "handle": 3, "expr": [{"accept": null}]}}}',
  // iptables-nft -P FORWARD DROP
  '{"add": {"chain": {"family": "ip", "table": "filter", "name": "FORWARD", "handle": 3, "type": "filter", "hook": "forward", "prio": 0, "policy": "drop"}}}',
  // our chain, a rule in it, a flushed ruleset deleting the table
  '{"create": {"chain": {"family": "ip", "table": "filter", "name": "ROUTE-CONTROLLER", "handle": 1}}}',
  '{"delete": {"rule": {"family": "ip", "table": "filter", "chain": "ROUTE-CONTROLLER", "handle": 5, "expr": []}}}',
  '{"delete": {"table": {"family": "ip", "name": "filter", "handle": 25}}}',
  '{"add": {"table": {"family": "ip6", "name": "filter", "handle": 26}}}',
];
const OTHERS = [
  // kube-proxy's sync rewrites KUBE-FORWARD: an unquoted FORWARD needle would match it every time.
  '{"delete": {"rule": {"family": "ip", "table": "filter", "chain": "KUBE-FORWARD", "handle": 10, "expr": [{"xt": {"type": "match", "name": "conntrack"}}, {"counter": {"packets": 0, "bytes": 0}}, {"drop": null}]}}}',
  '{"add": {"rule": {"family": "ip", "table": "nat", "chain": "POSTROUTING", "handle": 4, "expr": [{"xt": {"type": "target", "name": "MASQUERADE"}}]}}}',
  '{"add": {"table": {"family": "ip", "name": "nat", "handle": 20}}}',
  // native tables: another family, or a table that is not filter
  '{"delete": {"rule": {"family": "inet", "table": "filter", "chain": "FORWARD", "handle": 4, "expr": []}}}',
  '{"add": {"chain": {"family": "ip", "table": "kube-proxy", "name": "forward", "handle": 2}}}',
  '{"delete": {"table": {"family": "inet", "name": "route-controller", "handle": 11}}}',
];

describe('classifyIptablesMonitorLine', () => {
  const classify = classifyIptablesMonitorLine('ROUTE-CONTROLLER');

  it('calls ours what touches ip/ip6 filter itself, its FORWARD chain or our chain', () => {
    expect(OURS.map(classify)).toEqual(OURS.map(() => 'ours'));
  });

  it("calls other kube-proxy's KUBE-FORWARD, other tables and other families", () => {
    expect(OTHERS.map(classify)).toEqual(OTHERS.map(() => 'other'));
  });

  it('recognises lost events and ignores other comments', () => {
    expect(classify('# ERROR: We lost some netlink events!')).toBe('lost');
    expect(classify('# something else')).toBe('ignore');
    expect(classify('')).toBe('ignore');
  });

  it('describes what changed', () => {
    expect(describeIptablesMonitorLine(OURS[0] as string)).toBe('insert rule ip filter FORWARD');
    expect(describeIptablesMonitorLine(OURS[2] as string)).toBe('add chain ip filter FORWARD');
    expect(describeIptablesMonitorLine(OURS[5] as string)).toBe('delete table ip filter');
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

  it('nft mode: follows nft -j monitor ruleset', async () => {
    const streams = new FakeStreamRunner();
    const backend = new IptablesBackend({ mode: 'nft', runner: new FakeCommandRunner(), streams });
    const seen: string[] = [];
    const controller = new AbortController();
    const watching = backend.watchChanges(listener(seen), controller.signal);
    expect(streams.current?.command).toBe('nft -j monitor ruleset');
    streams.current?.emit(OTHERS[0] as string, OURS[0] as string);
    streams.current?.end({ exitCode: 134 });
    expect(await watching).toEqual({ stopped: false, reason: 'nft -j monitor ruleset exited with code 134' });
    expect(seen).toEqual(['other', 'insert rule ip filter FORWARD']);
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
