import { NO_HIT_RECORDS } from '@route-controller/core';
import { describe, expect, it } from 'vitest';
import { DEFAULT_LAYOUT } from '../src/layout.js';
import { parseRecords } from '../src/records.js';
import { fixture, PLAIN_LAYOUT } from './helpers.js';

const records = (name: string) => parseRecords(fixture(name), DEFAULT_LAYOUT);

/** One line per record, for readable expectations. */
const lines = (name: string) =>
  records(name).records.map(
    (r) => `${r.family} ${r.source} -> ${r.destination}: ${r.packets}/${r.bytes} ${r.lastSeenSecondsAgo}s`,
  );

/** A listing of our table with one record set whose elements are `elem`. */
function listing(elem: unknown, set: Record<string, unknown> = {}): string {
  return JSON.stringify({
    nftables: [
      { metainfo: { version: '1.0.6', json_schema_version: 1 } },
      { table: { family: 'inet', name: 'route-controller', handle: 1 } },
      {
        set: {
          family: 'inet',
          name: 'stale-v4',
          table: 'route-controller',
          type: ['ipv4_addr', 'ipv4_addr'],
          handle: 3,
          size: 4096,
          flags: ['timeout'],
          timeout: 600,
          ...(elem === undefined ? {} : { elem }),
          stmt: [{ counter: null }],
          ...set,
        },
      },
    ],
  });
}

describe('reading hit records from the record sets (nft 1.0.6 JSON)', () => {
  it('reads each pair with its counters, and the time since its last packet from the timeout minus expires', () => {
    expect(lines('applied-records-hits')).toEqual([
      'ipv4 10.250.0.2 -> 10.96.5.5: 4/336 2s',
      'ipv4 10.250.0.3 -> 10.96.5.5: 2/168 2s',
      'ipv4 10.250.0.2 -> 10.96.0.99: 1/84 2s',
      'ipv6 fd00:250::2 -> fd00:10:96::55: 3/312 1s',
      'ipv6 fd00:250::3 -> fd00:10:96::55: 1/104 1s',
      'ipv6 fd00:250::2 -> fd00:10:96::99: 2/208 1s',
    ]);
    expect(records('applied-records-hits').sets).toEqual([
      { family: 'ipv4', size: 4096, count: 3, full: false, timeoutSeconds: 600 },
      { family: 'ipv6', size: 4096, count: 3, full: false, timeoutSeconds: 600 },
    ]);
  });

  it("reads the research notes' listing: two sources, two destinations, three pings each, per family", () => {
    expect(lines('records-research-listing')).toEqual([
      'ipv4 10.244.1.2 -> 10.96.5.5: 3/252 7s',
      'ipv4 10.244.1.3 -> 10.96.5.5: 3/252 6s',
      'ipv4 10.244.1.2 -> 10.96.0.99: 3/252 6s',
      'ipv4 10.244.1.3 -> 10.96.0.99: 3/252 5s',
      'ipv6 fd00:244::2 -> fd00:96::5:5: 3/312 5s',
      'ipv6 fd00:244::3 -> fd00:96::5:5: 3/312 3s',
      'ipv6 fd00:244::2 -> fd00:96::99: 3/312 4s',
      'ipv6 fd00:244::3 -> fd00:96::99: 3/312 3s',
    ]);
  });

  it('reads the same records whatever form the flags are printed in', () => {
    expect(records('records-flags-as-printed-later')).toEqual(records('applied-records-hits'));
  });

  it('an empty record set has no elem key: no records, and a set that is not full', () => {
    expect(records('applied-records-v4-only-reject')).toEqual({
      records: [],
      sets: [
        { family: 'ipv4', size: 4096, count: 0, full: false, timeoutSeconds: 600 },
        { family: 'ipv6', size: 4096, count: 0, full: false, timeoutSeconds: 600 },
      ],
    });
  });

  it('takes an element timeout of its own over the set timeout, and no expires as a timeout ago', () => {
    const parsed = parseRecords(
      listing([
        {
          elem: {
            val: { concat: ['10.0.0.7', '10.96.0.1'] },
            timeout: 60,
            expires: 50,
            counter: { packets: 1, bytes: 84 },
          },
        },
        { elem: { val: { concat: ['10.0.0.8', '10.96.0.1'] }, counter: { packets: 2, bytes: 168 } } },
      ]),
      DEFAULT_LAYOUT,
    );
    expect(parsed.records.map((r) => [r.source, r.lastSeenSecondsAgo])).toEqual([
      ['10.0.0.7', 10],
      ['10.0.0.8', 600],
    ]);
  });

  it('counts a full set as full, and leaves out elements of another shape while counting them', () => {
    const element = (n: number) => ({
      elem: { val: { concat: ['10.0.0.7', `10.96.0.${n}`] }, expires: 599, counter: { packets: 1, bytes: 84 } },
    });
    const full = parseRecords(
      listing([element(1), element(2), 'odd', { elem: { val: 'x' } }], { size: 4 }),
      DEFAULT_LAYOUT,
    );
    expect(full.records).toHaveLength(2);
    expect(full.sets).toEqual([{ family: 'ipv4', size: 4, count: 4, full: true, timeoutSeconds: 600 }]);
  });

  it('reads nothing with the plain layout, and nothing from a table without record sets', () => {
    expect(parseRecords(fixture('applied-records-hits'), PLAIN_LAYOUT)).toEqual(NO_HIT_RECORDS);
    expect(records('applied-dual-stack-drop')).toEqual({ records: [], sets: [] });
  });
});
