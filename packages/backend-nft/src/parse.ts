import {
  type BlockAction,
  type Cidr,
  compareCidrs,
  type DropCounters,
  ErrorCodes,
  type FamilyObservation,
  type IpFamily,
  MAX_PREFIX,
  NOTHING_OBSERVED,
  type ObservedState,
  parseCidr,
  RouteControllerError,
} from '@route-controller/core';
import {
  type FamilyLayout,
  familyLayouts,
  NFT_CHAIN,
  NFT_CHAIN_PRIORITY,
  NFT_FAMILY,
  type NftLayout,
  OLD_NFT_CHAIN_PRIORITY,
  OWNER_COMMENT,
  type RecordsLayout,
} from './layout.js';
import { SUPPORTED_JSON_SCHEMA_VERSION } from './nft-json.js';

/**
 * Reads the output of `nft -j list table inet <ours>` into an ObservedState. Everything that is not
 * exactly what apply() writes becomes a `problem`, so apply knows to rebuild the table.
 */

type JsonObject = Readonly<Record<string, unknown>>;

function isObject(value: unknown): value is JsonObject {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function unexpected(message: string, details: Record<string, unknown> = {}): RouteControllerError {
  return new RouteControllerError(ErrorCodes.UnexpectedOutput, message, {
    hint: 'This nft speaks a JSON dialect route-controller does not know; use nftables 1.0.1 or newer with json_schema_version 1, or choose the iptables backend.',
    details,
  });
}

/** The entries of an `nft -j` listing, after checking it speaks the schema version we know. */
export function parseListing(stdout: string): JsonObject[] {
  let document: unknown;
  try {
    document = JSON.parse(stdout);
  } catch (error) {
    throw new RouteControllerError(ErrorCodes.UnexpectedOutput, 'nft -j printed something that is not JSON', {
      hint: 'Check that this nft build has JSON support (nft -V shows "json: yes").',
      cause: error,
      details: { stdout: stdout.slice(0, 500) },
    });
  }
  const entries = isObject(document) ? document.nftables : undefined;
  if (!Array.isArray(entries))
    throw unexpected('nft -j output has no "nftables" array', { stdout: stdout.slice(0, 500) });
  const objects = entries.filter(isObject);
  const metainfo = objects.find((entry) => isObject(entry.metainfo))?.metainfo;
  const version = isObject(metainfo) ? metainfo.json_schema_version : undefined;
  if (version !== SUPPORTED_JSON_SCHEMA_VERSION) {
    throw unexpected(
      version === undefined
        ? 'nft -j output carries no json_schema_version'
        : `nft -j output uses json_schema_version ${JSON.stringify(version)}, route-controller reads ${SUPPORTED_JSON_SCHEMA_VERSION}`,
      { jsonSchemaVersion: version, nftVersion: isObject(metainfo) ? metainfo.version : undefined },
    );
  }
  return objects.filter((entry) => !('metainfo' in entry));
}

/**
 * One of our rules in the forward chain, understood: its verdict (without records), or the record
 * chain it jumps to (with records; the verdict is then read from that chain).
 */
interface RuleReading {
  readonly family: IpFamily;
  readonly action?: BlockAction;
  readonly counters: DropCounters;
}

/** What a rule of a record chain does: records the pair, or blocks. */
type RecordChainStep = 'update' | BlockAction;

/** The kind of an entry: its single key ("table", "chain", "set", "rule", "map", ...). */
function kindOf(entry: JsonObject): [string, JsonObject] | undefined {
  const keys = Object.keys(entry);
  const kind = keys[0];
  if (keys.length !== 1 || kind === undefined) return undefined;
  const body = entry[kind];
  return isObject(body) ? [kind, body] : undefined;
}

function describeObject(kind: string, body: JsonObject): string {
  const name = typeof body.name === 'string' ? ` ${body.name}` : '';
  const handle = typeof body.handle === 'number' ? ` (handle ${body.handle})` : '';
  return `${kind}${name}${handle}`;
}

/** Parses our table's listing; an absent table is the caller's concern (nft exits non-zero). */
export function parseOurTable(stdout: string, layout: NftLayout): ObservedState {
  const entries = parseListing(stdout);
  const families = familyLayouts(layout);
  const problems: string[] = [];
  let present = false;
  let chainSeen = false;
  const cidrs = new Map<IpFamily, Cidr[]>();
  const setsSeen = new Set<IpFamily>();
  const rules = new Map<IpFamily, RuleReading>();
  const { records } = layout;
  const recordSetsSeen = new Set<IpFamily>();
  const recordChainsSeen = new Set<IpFamily>();
  const recordSteps = new Map<IpFamily, RecordChainStep[]>();

  for (const entry of entries) {
    const parsed = kindOf(entry);
    if (!parsed) {
      problems.push(`unrecognised entry in our table: ${JSON.stringify(entry).slice(0, 200)}`);
      continue;
    }
    const [kind, body] = parsed;
    // `list table` prints only our table; anything else would be a misreading, not ours to judge.
    const table = kind === 'table' ? body.name : body.table;
    if (body.family !== NFT_FAMILY || table !== layout.table) continue;
    present = true;
    switch (kind) {
      case 'table':
        break;
      case 'chain': {
        const recordFamily = records ? families.find((f) => f.recordChain === body.name) : undefined;
        if (body.name === NFT_CHAIN) {
          chainSeen = true;
          problems.push(...chainProblems(body));
        } else if (recordFamily) {
          recordChainsSeen.add(recordFamily.family);
          if (body.hook !== undefined)
            problems.push(`chain ${recordFamily.recordChain} is a base chain, not a regular one`);
        } else {
          problems.push(`unexpected ${describeObject(kind, body)} in our table`);
        }
        break;
      }
      case 'set': {
        const family = families.find((f) => f.set === body.name);
        const recordFamily = records ? families.find((f) => f.recordSet === body.name) : undefined;
        if (recordFamily && records) {
          // Only the declaration: its elements are the kernel's records, never drift.
          recordSetsSeen.add(recordFamily.family);
          problems.push(...recordSetProblems(body, recordFamily, records));
          break;
        }
        if (!family) {
          problems.push(`unexpected ${describeObject(kind, body)} in our table`);
          break;
        }
        setsSeen.add(family.family);
        const reading = readSet(body, family);
        cidrs.set(family.family, reading.cidrs);
        problems.push(...reading.problems);
        break;
      }
      case 'rule': {
        const recordFamily = records ? families.find((f) => f.recordChain === body.chain) : undefined;
        if (recordFamily) {
          const step = readRecordStep(body, recordFamily);
          if (!step) {
            problems.push(
              `rule (handle ${String(body.handle)}) in chain ${String(body.chain)} is not one we write: ${summariseExpr(body.expr)}`,
            );
          } else {
            recordSteps.set(recordFamily.family, [...(recordSteps.get(recordFamily.family) ?? []), step]);
            if (body.comment !== OWNER_COMMENT) {
              problems.push(`a rule of chain ${recordFamily.recordChain} lacks the ownership comment`);
            }
          }
          break;
        }
        const reading = body.chain === NFT_CHAIN ? readRule(body, families, records !== undefined) : undefined;
        if (!reading) {
          problems.push(
            `rule (handle ${String(body.handle)}) in chain ${String(body.chain)} is not one we write: ${summariseExpr(body.expr)}`,
          );
        } else if (rules.has(reading.family)) {
          problems.push(`a second ${reading.family} rule (handle ${String(body.handle)})`);
        } else {
          rules.set(reading.family, reading);
          if (body.comment !== OWNER_COMMENT) problems.push(`our ${reading.family} rule lacks the ownership comment`);
        }
        break;
      }
      default:
        problems.push(`unexpected ${describeObject(kind, body)} in our table`);
    }
  }

  if (!present) return NOTHING_OBSERVED;
  if (!chainSeen) problems.push(`chain ${NFT_CHAIN} is missing`);
  const actionOf = new Map<IpFamily, BlockAction>();
  for (const family of families) {
    if (!setsSeen.has(family.family)) problems.push(`set ${family.set} is missing`);
    if (!rules.has(family.family)) problems.push(`the ${family.family} rule is missing`);
    const plain = rules.get(family.family)?.action;
    if (plain) actionOf.set(family.family, plain);
    if (!records) continue;
    if (!recordSetsSeen.has(family.family)) problems.push(`set ${family.recordSet} is missing`);
    if (!recordChainsSeen.has(family.family)) {
      problems.push(`chain ${family.recordChain} is missing`);
      continue;
    }
    // Exactly: record the pair, then block. Any other order or count is not what we write.
    const steps = recordSteps.get(family.family) ?? [];
    const [first, second] = steps;
    if (steps.length === 2 && first === 'update' && second !== undefined && second !== 'update') {
      if (rules.has(family.family)) actionOf.set(family.family, second);
    } else {
      problems.push(
        `chain ${family.recordChain} holds ${steps.length === 0 ? 'no rules' : steps.join(', ')}, expected update, then drop or reject`,
      );
    }
  }
  const actions = new Set(actionOf.values());
  if (actions.size > 1) problems.push(`our rules disagree on the action (${[...actions].join(', ')})`);
  const observation = (family: IpFamily): FamilyObservation => {
    const rule = rules.get(family);
    // nft lists elements in its own order; ours is core's canonical one, so compare like with like.
    const list = [...(cidrs.get(family) ?? [])].sort(compareCidrs);
    return rule ? { cidrs: list, counters: rule.counters } : { cidrs: list };
  };
  return {
    present: true,
    action: actions.size === 1 ? ([...actions][0] ?? null) : null,
    ipv4: observation('ipv4'),
    ipv6: observation('ipv6'),
    problems,
  };
}

function chainProblems(chain: JsonObject): string[] {
  if (chain.hook === undefined) return [`chain ${NFT_CHAIN} is a regular chain, not a base chain on the forward hook`];
  const problems: string[] = [];
  const expect = (field: string, want: unknown) => {
    if (chain[field] !== want) {
      problems.push(
        `chain ${NFT_CHAIN} has ${field} ${JSON.stringify(chain[field])}, expected ${JSON.stringify(want)}`,
      );
    }
  };
  expect('type', 'filter');
  expect('hook', 'forward');
  if (chain.hook === 'forward' && chain.prio === OLD_NFT_CHAIN_PRIORITY) {
    // route-controller 0.1.0's chain: it dropped before kube-proxy's REJECT could answer.
    problems.push(
      `chain ${NFT_CHAIN} runs at priority filter (${OLD_NFT_CHAIN_PRIORITY}), before kube-proxy's REJECT, as route-controller 0.1.0 wrote it; expected filter + ${NFT_CHAIN_PRIORITY}`,
    );
  } else {
    expect('prio', NFT_CHAIN_PRIORITY);
  }
  expect('policy', 'accept');
  return problems;
}

/**
 * A set's flags as a list: nft prints an array, except 1.1.4, which prints a one-item array as its
 * bare item (`"flags": "interval"`; reverted in 1.1.5).
 */
export function flagsOf(value: unknown): unknown[] {
  if (Array.isArray(value)) return value;
  return value === undefined ? [] : [value];
}

function readSet(set: JsonObject, family: FamilyLayout): { cidrs: Cidr[]; problems: string[] } {
  const problems: string[] = [];
  if (set.type !== family.type) {
    problems.push(`set ${family.set} has type ${JSON.stringify(set.type)}, expected ${family.type}`);
  }
  const flags = flagsOf(set.flags);
  if (flags.length !== 1 || flags[0] !== 'interval') {
    problems.push(`set ${family.set} has flags ${JSON.stringify(flags)}, expected ["interval"]`);
  }
  for (const extra of ['timeout', 'gc-interval', 'size', 'stmt', 'map']) {
    if (extra in set) problems.push(`set ${family.set} has ${extra}, which we never set`);
  }
  const cidrs: Cidr[] = [];
  const elements: unknown[] = set.elem === undefined ? [] : Array.isArray(set.elem) ? set.elem : [set.elem];
  for (const element of elements) {
    const text = elementCidrText(element, family.family);
    let cidr: Cidr | undefined;
    if (text !== undefined) {
      try {
        cidr = parseCidr(text).cidr;
      } catch {
        cidr = undefined;
      }
    }
    if (cidr && cidr.family === family.family) cidrs.push(cidr);
    else problems.push(`set ${family.set} holds ${JSON.stringify(element)}, which is not a Service CIDR we write`);
  }
  return { cidrs, problems };
}

/**
 * What is wrong with a record set's declaration, if anything: the key type, flags (timeout, and the
 * dynamic flag nft adds and prints from 1.0.9), bound, timeout and per-element counter we write.
 * A set without its counter (an nft older than 1.0.6 drops `stmt` from JSON silently) is a problem,
 * so apply rebuilds rather than keeping records that cannot count.
 */
function recordSetProblems(set: JsonObject, family: FamilyLayout, records: RecordsLayout): string[] {
  const problems: string[] = [];
  const name = family.recordSet;
  const type = set.type;
  if (!Array.isArray(type) || type.length !== 2 || type.some((t) => t !== family.type)) {
    problems.push(`set ${name} has type ${JSON.stringify(type)}, expected ${family.type} . ${family.type}`);
  }
  const flags = flagsOf(set.flags);
  if (!flags.includes('timeout') || flags.some((flag) => flag !== 'timeout' && flag !== 'dynamic')) {
    problems.push(`set ${name} has flags ${JSON.stringify(set.flags)}, expected timeout (and dynamic)`);
  }
  if (set.size !== records.size)
    problems.push(`set ${name} has size ${JSON.stringify(set.size)}, expected ${records.size}`);
  if (set.timeout !== records.timeoutSeconds) {
    problems.push(`set ${name} has timeout ${JSON.stringify(set.timeout)}, expected ${records.timeoutSeconds}`);
  }
  const stmt = set.stmt;
  const counterOnly =
    Array.isArray(stmt) && stmt.length === 1 && isObject(stmt[0]) && Object.keys(stmt[0]).join() === 'counter';
  if (!counterOnly) {
    problems.push(`set ${name} has statements ${JSON.stringify(stmt) ?? 'none'}, expected one counter per element`);
  }
  for (const extra of ['gc-interval', 'map', 'policy']) {
    if (extra in set) problems.push(`set ${name} has ${extra}, which we never set`);
  }
  return problems;
}

/** "10.96.0.0/16" from `{"prefix": {...}}` or a bare address (nft prints /32 and /128 that way). */
function elementCidrText(element: unknown, family: IpFamily): string | undefined {
  if (typeof element === 'string') return `${element}/${MAX_PREFIX[family]}`;
  if (!isObject(element) || !isObject(element.prefix)) return undefined;
  const { addr, len } = element.prefix;
  return typeof addr === 'string' && typeof len === 'number' ? `${addr}/${len}` : undefined;
}

/**
 * Recognises exactly `<ip|ip6> daddr @<our set> counter <drop | reject with icmp(v6) admin-prohibited>`,
 * or with records `... counter goto <our record chain>`.
 */
function readRule(rule: JsonObject, families: readonly FamilyLayout[], records: boolean): RuleReading | undefined {
  const expr = rule.expr;
  if (!Array.isArray(expr) || expr.length !== 3) return undefined;
  const [match, counter, verdict] = expr as unknown[];
  const body = isObject(match) && isObject(match.match) ? match.match : undefined;
  const left = body && isObject(body.left) && isObject(body.left.payload) ? body.left.payload : undefined;
  if (!body || !left || body.op !== '==' || left.field !== 'daddr') return undefined;
  const family = families.find((f) => f.protocol === left.protocol && body.right === `@${f.set}`);
  if (!family) return undefined;
  const count = isObject(counter) && isObject(counter.counter) ? counter.counter : undefined;
  if (!count || typeof count.packets !== 'number' || typeof count.bytes !== 'number') return undefined;
  const counters = { packets: count.packets, bytes: count.bytes };
  if (records) {
    const jump =
      isObject(verdict) && Object.keys(verdict).length === 1 && isObject(verdict.goto) ? verdict.goto : undefined;
    return jump?.target === family.recordChain ? { family: family.family, counters } : undefined;
  }
  const action = readVerdict(verdict, family);
  if (!action) return undefined;
  return { family: family.family, action, counters };
}

/** A rule of a record chain: exactly `update @<record set> { saddr . daddr }`, or a verdict we write. */
function readRecordStep(rule: JsonObject, family: FamilyLayout): RecordChainStep | undefined {
  const expr = rule.expr;
  if (!Array.isArray(expr) || expr.length !== 1) return undefined;
  const [statement] = expr as unknown[];
  const update =
    isObject(statement) && Object.keys(statement).length === 1 && isObject(statement.set) ? statement.set : undefined;
  if (update) {
    const concat = isObject(update.elem) && Array.isArray(update.elem.concat) ? update.elem.concat : undefined;
    const fields = (concat ?? []).map((part: unknown) =>
      isObject(part) && isObject(part.payload) ? `${String(part.payload.protocol)} ${String(part.payload.field)}` : '?',
    );
    const ok =
      update.op === 'update' &&
      update.set === `@${family.recordSet}` &&
      fields.join(',') === `${family.protocol} saddr,${family.protocol} daddr` &&
      Object.keys(update).length === 3;
    return ok ? 'update' : undefined;
  }
  return readVerdict(statement, family);
}

function readVerdict(statement: unknown, family: FamilyLayout): BlockAction | undefined {
  if (!isObject(statement)) return undefined;
  const keys = Object.keys(statement);
  if (keys.length !== 1) return undefined;
  if ('drop' in statement && statement.drop === null) return 'drop';
  const reject = statement.reject;
  if (isObject(reject) && reject.type === family.rejectType && reject.expr === 'admin-prohibited') return 'reject';
  return undefined;
}

function summariseExpr(expr: unknown): string {
  const text = JSON.stringify(expr) ?? 'no expression';
  return text.length > 200 ? `${text.slice(0, 197)}...` : text;
}
