import { type CommandRunner, formatCommand, type IpFamily, runChecked } from '@route-controller/core';
import { type IptablesMode, iptablesBinary } from './binaries.js';
import { classifyIptablesFailure } from './classify-error.js';
import { OUR_TABLES } from './constants.js';
import { parseSave, type SaveDump } from './parse-save.js';
import { iptablesUnreadable, unreadableReasons } from './readability.js';

/**
 * How one family is read: never in a way that creates a table. nft: `-save -c -t <table>` for each
 * table we use (security, filter), which lists a table without creating it (iptables-nft-save shows
 * absent tables' built-in chains, made up, and nft list tables stays empty). legacy: the whole `-save
 * -c` dump, because `-t <table>` makes the kernel instantiate that legacy table just to list it (a
 * legacy filter or security table on a node that had none); the dump holds only the tables that
 * exist. The commands a read runs, in the order unit tests script them.
 */
export function familyReadArgs(mode: IptablesMode): readonly (readonly string[])[] {
  return mode === 'nft' ? OUR_TABLES.map((table) => ['-c', '-t', table]) : [['-c']];
}

/**
 * Reads one family's tables into one dump. A failed run throws its classified error; a dump that
 * says it is incomplete throws ERR_RC_FIREWALL_UNREADABLE: nothing is ever written from it.
 */
export async function readFamily(
  runner: CommandRunner,
  mode: IptablesMode,
  family: IpFamily,
  chain: string,
): Promise<SaveDump> {
  const file = iptablesBinary(mode, family, 'save');
  const dumps = await Promise.all(
    familyReadArgs(mode).map(async (args) => {
      const result = await runChecked(runner, { file, args }, ({ exitCode, stderr }) =>
        classifyIptablesFailure({ file, args, exitCode, stderr }),
      );
      const dump = parseSave(result.stdout);
      const reasons = unreadableReasons(dump, result.stderr, chain);
      if (reasons.length > 0) {
        const table = mode === 'nft' ? args.at(-1) : undefined;
        throw iptablesUnreadable(mode, family, table, formatCommand({ file, args }), reasons, result.stderr);
      }
      return dump;
    }),
  );
  return {
    tables: dumps.flatMap((dump) => dump.tables),
    legacyTablesPresent: dumps.some((dump) => dump.legacyTablesPresent),
    incomplete: [],
  };
}
