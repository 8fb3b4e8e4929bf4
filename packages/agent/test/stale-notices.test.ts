import type { HitRecord } from '@route-controller/core';
import { describe, expect, it } from 'vitest';
import { staleDestinations } from '../src/stale/stale-destinations.js';
import {
  describeWindow,
  EVENT_BURST,
  EVENT_REFILL_MS,
  EVENT_TTL_MS,
  formatNotice,
  StaleEventPolicy,
  StaleNotices,
} from '../src/stale/stale-notices.js';

const record = (source: string, destination: string, packets: number): HitRecord => ({
  family: 'ipv4',
  source,
  destination,
  packets,
  bytes: packets * 84,
  lastSeenSecondsAgo: 1,
});

const SECOND = 1_000;

/** What each read says, as log lines. */
function lines(notices: StaleNotices, records: readonly HitRecord[], now: number): string[] {
  return notices.update(records, now).map((notice) => formatNotice(notice));
}

describe('the stale ClusterIP log: once per new pair, then at most once a minute per destination', () => {
  it('writes the line the issue asks for', () => {
    expect(
      formatNotice({
        kind: 'continuing',
        destination: '10.96.5.5',
        sources: [{ address: '10.244.0.7', packets: 312 }],
        packets: 312,
        windowMs: 60 * SECOND,
      }),
    ).toBe(
      'stale ClusterIP 10.96.5.5 dialled by 10.244.0.7 (312 packets in the last minute): no Service owns this address',
    );
  });

  it('says a new pair once, then the destination once a minute while its packets keep coming', () => {
    const notices = new StaleNotices();
    // Found on the first read: counted since before the agent looked.
    expect(lines(notices, [record('10.244.0.7', '10.96.5.5', 40)], 0)).toEqual([
      'stale ClusterIP 10.96.5.5 dialled by 10.244.0.7 (40 packets since it was first recorded): no Service owns this address',
    ]);
    // Resyncs every 30 s: nothing within the minute, however many packets.
    expect(lines(notices, [record('10.244.0.7', '10.96.5.5', 200)], 30 * SECOND)).toEqual([]);
    expect(lines(notices, [record('10.244.0.7', '10.96.5.5', 352)], 60 * SECOND)).toEqual([
      'stale ClusterIP 10.96.5.5 dialled by 10.244.0.7 (312 packets in the last minute): no Service owns this address',
    ]);
    expect(lines(notices, [record('10.244.0.7', '10.96.5.5', 400)], 90 * SECOND)).toEqual([]);
    // Idle since: nothing to say, however long it stays recorded.
    expect(lines(notices, [record('10.244.0.7', '10.96.5.5', 400)], 150 * SECOND)).toEqual([
      'stale ClusterIP 10.96.5.5 dialled by 10.244.0.7 (48 packets in the last minute): no Service owns this address',
    ]);
    expect(lines(notices, [record('10.244.0.7', '10.96.5.5', 400)], 300 * SECOND)).toEqual([]);
    // It starts again after a long quiet spell: the window says how long the count covers.
    expect(lines(notices, [record('10.244.0.7', '10.96.5.5', 410)], 330 * SECOND)).toEqual([
      'stale ClusterIP 10.96.5.5 dialled by 10.244.0.7 (10 packets in the last 3 minutes): no Service owns this address',
    ]);
  });

  it('says a second source of a destination at once, even within the minute, and then both together', () => {
    const notices = new StaleNotices();
    lines(notices, [record('10.244.0.7', '10.96.5.5', 10)], 0);
    expect(
      lines(notices, [record('10.244.0.7', '10.96.5.5', 20), record('10.244.0.8', '10.96.5.5', 5)], 30 * SECOND),
    ).toEqual([
      'stale ClusterIP 10.96.5.5 dialled by 10.244.0.8 (5 packets in the last minute): no Service owns this address',
    ]);
    expect(
      lines(notices, [record('10.244.0.7', '10.96.5.5', 90), record('10.244.0.8', '10.96.5.5', 105)], 90 * SECOND),
    ).toEqual([
      'stale ClusterIP 10.96.5.5 dialled by 10.244.0.8, 10.244.0.7 (180 packets in the last minute): no Service owns this address',
    ]);
  });

  it('keeps destinations apart: each new pair once, each destination on its own minute', () => {
    const notices = new StaleNotices();
    expect(
      lines(notices, [record('10.244.0.7', '10.96.5.5', 3), record('10.244.0.7', '10.96.0.99', 2)], 0),
    ).toHaveLength(2);
    expect(
      lines(notices, [record('10.244.0.7', '10.96.5.5', 3), record('10.244.0.7', '10.96.0.99', 2)], 30 * SECOND),
    ).toEqual([]);
    expect(
      lines(notices, [record('10.244.0.7', '10.96.5.5', 9), record('10.244.0.7', '10.96.0.99', 2)], 60 * SECOND),
    ).toEqual([
      'stale ClusterIP 10.96.5.5 dialled by 10.244.0.7 (6 packets in the last minute): no Service owns this address',
    ]);
  });

  it('forgets a pair that left the records (idle for their timeout), and says it again when it returns', () => {
    const notices = new StaleNotices();
    lines(notices, [record('10.244.0.7', '10.96.5.5', 3)], 0);
    expect(lines(notices, [], 30 * SECOND)).toEqual([]);
    expect(lines(notices, [record('10.244.0.7', '10.96.5.5', 1)], 40 * SECOND)).toEqual([
      'stale ClusterIP 10.96.5.5 dialled by 10.244.0.7 (1 packet in the last minute): no Service owns this address',
    ]);
  });

  it('counts across an element made anew between two reads (its counter went down)', () => {
    const notices = new StaleNotices();
    lines(notices, [record('10.244.0.7', '10.96.5.5', 50)], 0);
    lines(notices, [record('10.244.0.7', '10.96.5.5', 70)], 30 * SECOND);
    expect(lines(notices, [record('10.244.0.7', '10.96.5.5', 4)], 60 * SECOND)).toEqual([
      'stale ClusterIP 10.96.5.5 dialled by 10.244.0.7 (24 packets in the last minute): no Service owns this address',
    ]);
  });

  it('names a source by its pod when the caller knows it', () => {
    const [notice] = new StaleNotices().update([record('10.244.0.7', '10.96.5.5', 3)], 0);
    if (!notice) throw new Error('no notice');
    expect(formatNotice(notice, (address) => `default/web-7f9c4 (${address})`)).toBe(
      'stale ClusterIP 10.96.5.5 dialled by default/web-7f9c4 (10.244.0.7) (3 packets since it was first recorded): no Service owns this address',
    );
  });

  it('describes windows', () => {
    expect(describeWindow(undefined)).toBe('since it was first recorded');
    expect(describeWindow(30 * SECOND)).toBe('in the last minute');
    expect(describeWindow(90 * SECOND)).toBe('in the last minute');
    expect(describeWindow(5 * 60 * SECOND)).toBe('in the last 5 minutes');
  });
});

describe("StaleEventPolicy: client-go's spam filter and aggregation, for the Events about this node", () => {
  it('lets one Event per destination through every 10 minutes, counting every occurrence in between', () => {
    const policy = new StaleEventPolicy();
    expect(policy.occurred('10.96.5.5', 0)).toBe(1);
    expect(policy.occurred('10.96.5.5', 60 * SECOND)).toBeUndefined();
    expect(policy.occurred('10.96.0.99', 60 * SECOND)).toBe(1);
    expect(policy.occurred('10.96.5.5', 599 * SECOND)).toBeUndefined();
    expect(policy.occurred('10.96.5.5', 600 * SECOND)).toBe(4);
    expect(policy.occurred('10.96.0.99', 600 * SECOND)).toBeUndefined();
  });

  it('lets 25 through at once, then one every 5 minutes, however many destinations', () => {
    const policy = new StaleEventPolicy();
    const sent = (at: number, from: number, to: number) => {
      let count = 0;
      for (let n = from; n < to; n += 1) if (policy.occurred(`10.96.0.${n}`, at) !== undefined) count += 1;
      return count;
    };
    expect(sent(0, 0, 200)).toBe(EVENT_BURST);
    expect(sent(EVENT_REFILL_MS - SECOND, 200, 250)).toBe(0);
    expect(sent(EVENT_REFILL_MS, 200, 250)).toBe(1);
    expect(sent(3 * EVENT_REFILL_MS, 200, 250)).toBe(2);
  });

  it('starts a new Event (count 1) for a destination whose last one the API server has forgotten', () => {
    const policy = new StaleEventPolicy();
    expect(policy.occurred('10.96.5.5', 0)).toBe(1);
    expect(policy.occurred('10.96.5.5', 10 * 60 * SECOND)).toBe(2);
    expect(policy.occurred('10.96.5.5', 10 * 60 * SECOND + EVENT_TTL_MS)).toBe(1);
  });
});

describe('stale destinations, as status shows them', () => {
  it('groups by destination, most packets first, each with its sources most packets first and pod names', () => {
    const records: HitRecord[] = [
      { ...record('10.244.0.8', '10.96.0.99', 2), lastSeenSecondsAgo: 30 },
      { ...record('10.244.0.7', '10.96.5.5', 312), lastSeenSecondsAgo: 4 },
      { ...record('10.244.0.8', '10.96.5.5', 12), lastSeenSecondsAgo: 9 },
      { ...record('172.18.0.1', '10.96.0.99', 7), lastSeenSecondsAgo: 50 },
    ];
    expect(staleDestinations(records, new Map([['10.244.0.7', 'default/web-7f9c4']]))).toEqual([
      {
        address: '10.96.5.5',
        packets: 324,
        bytes: 324 * 84,
        lastSeenSecondsAgo: 4,
        sources: [
          { address: '10.244.0.7', packets: 312, pod: 'default/web-7f9c4' },
          { address: '10.244.0.8', packets: 12 },
        ],
      },
      {
        address: '10.96.0.99',
        packets: 9,
        bytes: 9 * 84,
        lastSeenSecondsAgo: 30,
        sources: [
          { address: '172.18.0.1', packets: 7 },
          { address: '10.244.0.8', packets: 2 },
        ],
      },
    ]);
  });
});
