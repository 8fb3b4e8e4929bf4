import { ErrorCodes, RouteControllerError } from '@route-controller/core';

/**
 * A parser for `iptables-save` output (both flavours, with or without `-c`). It keeps each rule's
 * text as printed, because restore accepts it back verbatim: that is how we delete a rule by spec.
 */

export interface SaveCounters {
  readonly packets: number;
  readonly bytes: number;
}

export interface SavedChain {
  readonly name: string;
  /** "ACCEPT"/"DROP" for built-in chains, "-" for user chains. */
  readonly policy: string;
  readonly builtin: boolean;
}

export interface SavedRule {
  readonly table: string;
  readonly chain: string;
  /** Everything after "-A <chain> ", as printed (quotes and escapes kept). */
  readonly spec: string;
  /** The spec split as iptables-restore splits it. */
  readonly tokens: readonly string[];
  /** Present when saved with -c. */
  readonly counters?: SaveCounters;
  /** 1-based position within its chain. */
  readonly position: number;
  /** 1-based line in the save output, for error messages. */
  readonly line: number;
}

export interface SavedTable {
  readonly name: string;
  readonly chains: readonly SavedChain[];
  readonly rules: readonly SavedRule[];
}

export interface SaveDump {
  readonly tables: readonly SavedTable[];
  /**
   * The output held iptables-nft-save's "# Warning: iptables-legacy tables present, use
   * iptables-legacy-save to see them": the node has tables in the other flavour too. (1.8.9
   * prints it on stderr, see mentionsLegacyTables; older releases mixed it into stdout.)
   */
  readonly legacyTablesPresent: boolean;
}

const LEGACY_TABLES_WARNING = /^#\s*Warning: iptables-legacy tables present/;
/** True when `text` (stdout or stderr of iptables-nft-save) carries the legacy-tables warning. */
export function mentionsLegacyTables(text: string): boolean {
  return text.split('\n').some((line) => LEGACY_TABLES_WARNING.test(line.trim()));
}

const COUNTERS = /^\[(\d+):(\d+)\]\s+/;
const CHAIN_LINE = /^:(\S+)\s+(\S+)(?:\s+\[\d+:\d+\])?\s*$/;
const RULE_LINE = /^-A\s+(\S+)(?:\s+(.*))?$/;

function unexpected(line: number, text: string, reason: string): RouteControllerError {
  return new RouteControllerError(ErrorCodes.UnexpectedOutput, `cannot parse iptables-save line ${line}: ${reason}`, {
    hint: 'This iptables version prints something route-controller does not understand; please report it with the line.',
    details: { line, text },
  });
}

export function parseSave(text: string): SaveDump {
  const tables: SavedTable[] = [];
  let legacyTablesPresent = false;
  let current: { name: string; chains: SavedChain[]; rules: SavedRule[]; positions: Map<string, number> } | undefined;
  const lines = text.split('\n');
  for (const [index, raw] of lines.entries()) {
    const lineNumber = index + 1;
    const line = raw.trim();
    if (line === '') continue;
    if (line.startsWith('#')) {
      if (LEGACY_TABLES_WARNING.test(line)) legacyTablesPresent = true;
      continue;
    }
    if (line.startsWith('*')) {
      if (current)
        throw unexpected(lineNumber, raw, `table ${line.slice(1)} starts before ${current.name} is committed`);
      current = { name: line.slice(1), chains: [], rules: [], positions: new Map() };
      continue;
    }
    if (!current) throw unexpected(lineNumber, raw, 'a rule or chain outside any table');
    if (line === 'COMMIT') {
      tables.push({ name: current.name, chains: current.chains, rules: current.rules });
      current = undefined;
      continue;
    }
    if (line.startsWith(':')) {
      const chain = CHAIN_LINE.exec(line);
      if (!chain) throw unexpected(lineNumber, raw, 'malformed chain declaration');
      const [, name = '', policy = ''] = chain;
      current.chains.push({ name, policy, builtin: policy !== '-' });
      continue;
    }
    const counterMatch = COUNTERS.exec(line);
    const body = counterMatch ? line.slice(counterMatch[0].length) : line;
    const rule = RULE_LINE.exec(body);
    if (!rule) throw unexpected(lineNumber, raw, 'neither a chain, a rule nor COMMIT');
    const [, chain = '', spec = ''] = rule;
    let tokens: string[];
    try {
      tokens = tokenizeRule(spec);
    } catch (error) {
      throw unexpected(lineNumber, raw, error instanceof Error ? error.message : String(error));
    }
    const position = (current.positions.get(chain) ?? 0) + 1;
    current.positions.set(chain, position);
    current.rules.push({
      table: current.name,
      chain,
      spec,
      tokens,
      position,
      line: lineNumber,
      ...(counterMatch ? { counters: { packets: Number(counterMatch[1]), bytes: Number(counterMatch[2]) } } : {}),
    });
  }
  if (current) throw unexpected(lines.length, '', `table ${current.name} is never committed`);
  return { tables, legacyTablesPresent };
}

/**
 * Splits a rule the way iptables-restore does: whitespace separates, double quotes group, and
 * inside quotes a backslash takes the next character literally (iptables-save escapes `"` and
 * `'` in comments that way).
 */
export function tokenizeRule(spec: string): string[] {
  const tokens: string[] = [];
  let token = '';
  let inToken = false;
  let quoted = false;
  for (let i = 0; i < spec.length; i += 1) {
    const char = spec[i] ?? '';
    if (quoted) {
      if (char === '\\' && i + 1 < spec.length) {
        token += spec[i + 1];
        i += 1;
      } else if (char === '"') {
        quoted = false;
      } else {
        token += char;
      }
    } else if (char === '"') {
      quoted = true;
      inToken = true;
    } else if (/\s/.test(char)) {
      if (inToken) tokens.push(token);
      token = '';
      inToken = false;
    } else {
      token += char;
      inToken = true;
    }
  }
  if (quoted) throw new Error('unterminated quote');
  if (inToken) tokens.push(token);
  return tokens;
}

/** Quotes a token for a restore payload when it needs it (comments have spaces). */
export function quoteToken(token: string): string {
  return /^[\w@%+=:,./!-]+$/.test(token) ? token : `"${token.replace(/(["\\'])/g, '\\$1')}"`;
}

export function findTable(dump: SaveDump, name: string): SavedTable | undefined {
  return dump.tables.find((table) => table.name === name);
}

/** Rules with a "-j" or "-g" to `target`. */
export function targetOf(rule: Pick<SavedRule, 'tokens'>): string | undefined {
  const { tokens } = rule;
  for (let i = 0; i < tokens.length - 1; i += 1) {
    if (tokens[i] === '-j' || tokens[i] === '--jump' || tokens[i] === '-g' || tokens[i] === '--goto') {
      return tokens[i + 1];
    }
  }
  return undefined;
}

/** Lines that are rules ("-A ..."), the measure iptables-wrappers uses to tell flavours apart. */
export function countRules(dump: SaveDump, ignoreChain?: string): number {
  let count = 0;
  for (const table of dump.tables) {
    for (const rule of table.rules) {
      if (ignoreChain !== undefined && (rule.chain === ignoreChain || targetOf(rule) === ignoreChain)) continue;
      count += 1;
    }
  }
  return count;
}

/** True when a chain named `name` is declared in any table. */
export function hasChain(dump: SaveDump, name: string): boolean {
  return dump.tables.some((table) => table.chains.some((chain) => chain.name === name));
}
