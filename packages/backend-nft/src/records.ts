import {
  type HitRecord,
  type HitRecords,
  type IpFamily,
  NO_HIT_RECORDS,
  type RecordSetStatus,
} from '@route-controller/core';
import { familyLayouts, NFT_FAMILY, type NftLayout } from './layout.js';
import { parseListing } from './parse.js';

type JsonObject = Readonly<Record<string, unknown>>;

const isObject = (value: unknown): value is JsonObject =>
  typeof value === 'object' && value !== null && !Array.isArray(value);

/**
 * The hit records in a listing of our table: the elements of the record sets, as nft 1.0.6 prints
 * them: `{"elem": {"val": {"concat": ["10.244.1.2", "10.96.5.5"]}, "expires": 593, "counter":
 * {"packets": 3, "bytes": 252}}}`. `expires` is whole seconds left (rounded down), and an element
 * carries `timeout` only when it differs from the set's, so the time since the last packet is the
 * timeout minus `expires`. A set with no elements has no `elem` key at all. Elements of another
 * shape are left out: they are not ours to report (observe() judges the sets' declarations).
 */
export function parseRecords(stdout: string, layout: NftLayout): HitRecords {
  if (!layout.records) return NO_HIT_RECORDS;
  const records: HitRecord[] = [];
  const sets: RecordSetStatus[] = [];
  const families = familyLayouts(layout);
  for (const entry of parseListing(stdout)) {
    const set = isObject(entry.set) ? entry.set : undefined;
    if (!set || set.family !== NFT_FAMILY || set.table !== layout.table) continue;
    const family = families.find((f) => f.recordSet === set.name);
    if (!family) continue;
    const timeout = typeof set.timeout === 'number' ? set.timeout : layout.records.timeoutSeconds;
    const size = typeof set.size === 'number' ? set.size : layout.records.size;
    const elements: unknown[] = Array.isArray(set.elem) ? set.elem : set.elem === undefined ? [] : [set.elem];
    let count = 0;
    for (const element of elements) {
      count += 1;
      const record = readElement(element, family.family, timeout);
      if (record) records.push(record);
    }
    sets.push({ family: family.family, size, count, full: count >= size, timeoutSeconds: timeout });
  }
  return { records, sets };
}

function readElement(element: unknown, family: IpFamily, setTimeout: number): HitRecord | undefined {
  const body = isObject(element) && isObject(element.elem) ? element.elem : undefined;
  const concat = body && isObject(body.val) && Array.isArray(body.val.concat) ? body.val.concat : undefined;
  const counter = body && isObject(body.counter) ? body.counter : undefined;
  if (!body || !concat || !counter) return undefined;
  const [source, destination] = concat as unknown[];
  const { packets, bytes } = counter;
  if (
    concat.length !== 2 ||
    typeof source !== 'string' ||
    typeof destination !== 'string' ||
    typeof packets !== 'number' ||
    typeof bytes !== 'number'
  ) {
    return undefined;
  }
  const timeout = typeof body.timeout === 'number' ? body.timeout : setTimeout;
  // No `expires`: the element has (under a second) left, so its last packet was a timeout ago.
  const expires = typeof body.expires === 'number' ? body.expires : 0;
  const lastSeenSecondsAgo = Math.max(0, timeout - expires);
  return { family, source, destination, packets, bytes, lastSeenSecondsAgo };
}
