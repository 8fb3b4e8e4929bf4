import { NFT_FAMILY } from './layout.js';
import type { MonitorLineTest } from './monitor.js';

/**
 * Which `nft -j monitor ruleset` lines are about our table: two substring checks, because sets print
 * `name` before `table` while rules, chains and elements print `table` first; quoted, so a longer
 * name containing ours does not match. A foreign object that mentions our name costs one read, no more.
 * Our table deleted, flushed with the ruleset, or any of its chains, sets, elements or rules changed.
 */
export function isOurTableLine(table: string): MonitorLineTest {
  const family = `"family": ${JSON.stringify(NFT_FAMILY)}`;
  const name = JSON.stringify(table);
  return (line) => line.includes(family) && line.includes(name);
}
