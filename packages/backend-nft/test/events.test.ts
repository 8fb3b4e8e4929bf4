import type { ChangeListener } from '@route-controller/core';
import { FakeCommandRunner, FakeStreamRunner } from '@route-controller/core/testing';
import { describe, expect, it } from 'vitest';
import { isOurTableLine } from '../src/events.js';
import { classifyMonitorLine, describeMonitorLine } from '../src/monitor.js';
import { NftBackend } from '../src/nft-backend.js';

// Lines as `nft -j monitor ruleset` 1.0.6 prints them (captured in a namespace, see the notes).
const OURS = [
  '{"add": {"table": {"family": "inet", "name": "route-controller", "handle": 3}}}',
  '{"delete": {"table": {"family": "inet", "name": "route-controller", "handle": 11}}}',
  // Sets print name before table: a combined "family, table" needle would miss these.
  '{"add": {"set": {"family": "inet", "name": "service-cidrs-v4", "table": "route-controller", "type": "ipv4_addr", "handle": 1, "flags": ["interval"]}}}',
  '{"delete": {"set": {"family": "inet", "name": "service-cidrs-v6", "table": "route-controller", "type": "invalid", "handle": 2}}}',
  '{"add": {"element": {"family": "inet", "table": "route-controller", "name": "service-cidrs-v4", "elem": {"set": [{"prefix": {"addr": "10.96.0.0", "len": 12}}]}}}}',
  '{"delete": {"chain": {"family": "inet", "table": "route-controller", "name": "forward", "handle": 3}}}',
  '{"insert": {"rule": {"family": "inet", "table": "route-controller", "chain": "forward", "handle": 9, "expr": [{"accept": null}]}}}',
];
const OTHERS = [
  '{"delete": {"rule": {"family": "ip", "table": "kube-proxy", "chain": "services", "handle": 4, "expr": []}}}',
  '{"add": {"chain": {"family": "ip", "table": "kube-proxy", "name": "forward", "handle": 2, "type": "filter", "hook": "forward", "prio": -10, "policy": "accept"}}}',
  '{"insert": {"rule": {"family": "ip", "table": "filter", "chain": "FORWARD", "handle": 2, "expr": [{"counter": {"packets": 0, "bytes": 0}}, {"accept": null}]}}}',
  // Another inet table whose name merely starts like ours; an ip table named like ours.
  '{"add": {"table": {"family": "inet", "name": "route-controller-canary", "handle": 5}}}',
  '{"add": {"table": {"family": "ip", "name": "route-controller", "handle": 6}}}',
];

describe("the nft backend's monitor lines", () => {
  const classify = classifyMonitorLine(isOurTableLine('route-controller'));

  it('calls ours every event naming our inet table, whatever the object and key order', () => {
    expect(OURS.map(classify)).toEqual(OURS.map(() => 'ours'));
  });

  it('calls other every event of another table, even one whose name contains ours', () => {
    expect(OTHERS.map(classify)).toEqual(OTHERS.map(() => 'other'));
  });

  it('follows a table name of our choosing', () => {
    const custom = classifyMonitorLine(isOurTableLine('rc-test'));
    expect(custom('{"delete": {"table": {"family": "inet", "name": "rc-test", "handle": 1}}}')).toBe('ours');
    expect(custom(OURS[0] as string)).toBe('other');
  });
});

describe('describeMonitorLine on our lines', () => {
  it('says what changed, in nft words', () => {
    expect(OURS.map(describeMonitorLine)).toEqual([
      'add table inet route-controller',
      'delete table inet route-controller',
      'add set inet route-controller service-cidrs-v4',
      'delete set inet route-controller service-cidrs-v6',
      'add element inet route-controller service-cidrs-v4',
      'delete chain inet route-controller forward',
      'insert rule inet route-controller forward',
    ]);
  });
});

describe('NftBackend.watchChanges', () => {
  it('runs nft -j monitor ruleset and reports our events, counting the others', async () => {
    const streams = new FakeStreamRunner();
    const backend = new NftBackend({ runner: new FakeCommandRunner(), streams });
    const seen: string[] = [];
    const listener: ChangeListener = {
      ready: () => seen.push('ready'),
      change: (what) => seen.push(what),
      other: () => seen.push('other'),
      lost: (detail) => seen.push(detail),
      diagnostic: (line) => seen.push(`stderr: ${line}`),
    };
    const controller = new AbortController();
    const watching = backend.watchChanges(listener, controller.signal);
    const stream = streams.current;
    expect(stream?.command).toBe('nft -j monitor ruleset');
    stream?.emit(OTHERS[0] as string, OURS[1] as string, '# ERROR: We lost some netlink events!');
    await new Promise((resolve) => setTimeout(resolve, 10));
    controller.abort();
    expect(await watching).toMatchObject({ stopped: true });
    // Ready comes from the netlink check, which finds no socket for a fake pid: it gives up at once.
    expect(seen.filter((line) => line !== 'ready')).toEqual([
      'other',
      'delete table inet route-controller',
      'ERROR: We lost some netlink events!',
    ]);
  });
});
