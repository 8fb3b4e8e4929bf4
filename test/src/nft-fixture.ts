import { NFT_TABLE, NftBackend, type NftBackendOptions } from '@route-controller/backend-nft';
import {
  type BlockAction,
  type CommandRequest,
  type CommandResult,
  type CommandRunner,
  type IpFamily,
  MAX_PREFIX,
  parseCidr,
} from '@route-controller/core';
import {
  type ContractFixture,
  type KernelRecord,
  type KernelView,
  RecordingCommandRunner,
} from '@route-controller/core/testing';
import { Netns } from '@route-controller/lab';
import { TrafficClient } from './traffic-client.js';

/**
 * The nft backend's contract fixture: a fresh network namespace per test, the backend's commands
 * recorded at the seam, and an oracle that reads the kernel with its own few lines of parsing.
 */

/** The backend's capabilities, taken from an instance that never runs a command. */

/** A command that writes: nft fed a JSON document (or a file), other than a --check dry run. */
export function isNftWrite(request: CommandRequest): boolean {
  if (!/(^|\/)nft$/.test(request.file) || request.args.includes('--check') || request.args.includes('-c')) return false;
  return request.args.includes('-f') || request.args.some((arg) => arg.startsWith('{'));
}

/**
 * Passes commands through, except that once `failing` is set, writes run without CAP_NET_ADMIN
 * (setpriv drops it from the bounding and inheritable sets), so the kernel itself refuses them
 * with "Operation not permitted", as for an agent deployed without the capability.
 */
export class CapabilityDroppingRunner implements CommandRunner {
  failing = false;

  constructor(
    private readonly inner: CommandRunner,
    private readonly applies: (request: CommandRequest) => boolean = isNftWrite,
  ) {}

  run(request: CommandRequest): Promise<CommandResult> {
    if (!this.failing || !this.applies(request)) return this.inner.run(request);
    return this.inner.run({
      ...request,
      file: 'setpriv',
      args: ['--inh-caps=-net_admin', '--bounding-set=-net_admin', '--', request.file, ...request.args],
    });
  }
}

const NOTHING: KernelView = Object.freeze({ present: false, action: null, ipv4: [], ipv6: [] });

type Json = Record<string, unknown>;
const isJson = (value: unknown): value is Json => typeof value === 'object' && value !== null && !Array.isArray(value);

/** The oracle: our table as the kernel holds it, parsed here, not by the backend's parse module. */
export async function kernelView(ns: Netns): Promise<KernelView> {
  const result = await ns.exec('nft', ['-j', 'list', 'table', 'inet', NFT_TABLE]);
  if (result.exitCode !== 0) {
    if (/No such file or directory/.test(result.stderr)) return NOTHING;
    throw new Error(`nft -j list table failed: ${result.stderr}`);
  }
  const entries = (JSON.parse(result.stdout) as { nftables: unknown[] }).nftables.filter(isJson);
  const cidrs: Record<IpFamily, string[]> = { ipv4: [], ipv6: [] };
  const actions = new Set<BlockAction>();
  for (const entry of entries) {
    // Record sets (a concatenated key type) hold hit records, not Service CIDRs.
    if (isJson(entry.set) && typeof entry.set.type === 'string') {
      const family: IpFamily = entry.set.type === 'ipv6_addr' ? 'ipv6' : 'ipv4';
      const elements = Array.isArray(entry.set.elem) ? entry.set.elem : [];
      for (const element of elements) cidrs[family].push(elementText(element, family));
    }
    if (isJson(entry.rule) && Array.isArray(entry.rule.expr)) {
      for (const statement of entry.rule.expr) {
        if (isJson(statement) && 'drop' in statement) actions.add('drop');
        if (isJson(statement) && 'reject' in statement) actions.add('reject');
      }
    }
  }
  return {
    present: true,
    action: actions.size === 1 ? ([...actions][0] ?? null) : null,
    ipv4: cidrs.ipv4,
    ipv6: cidrs.ipv6,
  };
}

/** The oracle for hit records: every element of our record sets, read here, not by the backend. */
export async function kernelRecords(ns: Netns): Promise<KernelRecord[]> {
  const result = await ns.exec('nft', ['-j', 'list', 'table', 'inet', NFT_TABLE]);
  if (result.exitCode !== 0) return [];
  const entries = (JSON.parse(result.stdout) as { nftables: unknown[] }).nftables.filter(isJson);
  const records: KernelRecord[] = [];
  for (const entry of entries) {
    if (!isJson(entry.set) || !Array.isArray(entry.set.type) || !Array.isArray(entry.set.elem)) continue;
    for (const element of entry.set.elem as {
      elem: { val: { concat: [string, string] }; counter: { packets: number } };
    }[]) {
      const [source, destination] = element.elem.val.concat;
      records.push({ source, destination, packets: element.elem.counter.packets });
    }
  }
  return records;
}

/** The oracle for the drop counter: packets counted by our IPv4 rule, as the kernel holds it. */
export async function kernelDropCounter(ns: Netns): Promise<number> {
  const { stdout } = await ns.must('nft', ['-j', 'list', 'table', 'inet', NFT_TABLE]);
  type Expr = { match?: { left?: { payload?: { protocol?: string; field?: string } } }; counter?: { packets: number } };
  for (const entry of (JSON.parse(stdout) as { nftables: { rule?: { expr: Expr[] } }[] }).nftables) {
    const payload = entry.rule?.expr[0]?.match?.left?.payload;
    const counter = entry.rule?.expr[1]?.counter;
    if (payload?.protocol === 'ip' && payload.field === 'daddr' && counter) return counter.packets;
  }
  throw new Error(`no IPv4 drop rule with a counter in ${stdout}`);
}

function elementText(element: unknown, family: IpFamily): string {
  if (typeof element === 'string') return parseCidr(`${element}/${MAX_PREFIX[family]}`).cidr.text;
  if (isJson(element) && isJson(element.prefix)) {
    return parseCidr(`${String(element.prefix.addr)}/${String(element.prefix.len)}`).cidr.text;
  }
  return JSON.stringify(element);
}

/** Every table but ours, each listed on its own without counters: must not change under our work. */
export async function foreignTables(ns: Netns): Promise<string> {
  const tables = (await ns.must('nft', ['list', 'tables'])).stdout
    .split('\n')
    .map((line) => line.trim().split(/\s+/))
    .filter((words): words is [string, string, string] => words[0] === 'table' && words.length === 3)
    .filter(([, family, name]) => !(family === 'inet' && name === NFT_TABLE));
  const parts: string[] = [];
  for (const [, family, name] of tables) {
    parts.push((await ns.must('nft', ['-s', 'list', 'table', family, name])).stdout);
  }
  return parts.join('');
}

/** A crash half-way through an older run: our chain on the wrong hook, one set, no rules. */
export const HALF_MADE_RULESET = `table inet ${NFT_TABLE} {
  set service-cidrs-v4 {
    type ipv4_addr; flags interval; elements = { 10.1.0.0/16 }
  }
  chain forward {
    type filter hook input priority 0; policy accept;
  }
}
`;

/**
 * Other tools' objects: a user's inet table, kube-proxy's nftables-mode table, tables named like
 * Cilium's and firewalld's, and iptables-nft's "ip filter" (written by iptables-nft itself).
 */
export const FOREIGN_RULESET = `table inet user-firewall {
  set trusted {
    type ipv4_addr; flags interval; elements = { 10.96.0.0/16, 192.168.0.0/16 }
  }
  chain forward {
    type filter hook forward priority 10; policy accept;
    ip saddr @trusted counter accept comment "user rule"
    ip6 daddr fd00:10:96::/112 counter accept
  }
  chain input {
    type filter hook input priority 0; policy accept;
    tcp dport 22 accept
  }
}
table ip kube-proxy {
  set cluster-ips { type ipv4_addr; elements = { 10.96.0.10 } }
  chain nat-prerouting {
    type nat hook prerouting priority dstnat; policy accept;
    ip daddr 10.96.0.10 dnat to 10.244.2.2
  }
}
table ip6 cilium {
  chain forward {
    type filter hook forward priority -1; policy accept;
    ip6 daddr fd00::/8 counter
  }
}
table inet firewalld {
  chain filter_FORWARD {
    type filter hook forward priority filter + 10; policy accept;
    ct state established,related accept
  }
}
`;

export interface NftContractFixture extends ContractFixture<NftBackend> {
  readonly ns: Netns;
  readonly recorder: RecordingCommandRunner;
}

/** `options` go to the backend (the contract suite gives its record sets a bound small enough to fill). */
export async function createNftFixture(
  label = 'nft',
  options: Pick<NftBackendOptions, 'records'> = {},
): Promise<NftContractFixture> {
  const ns = await Netns.create(label);
  const dropping = new CapabilityDroppingRunner(ns.runner);
  const recorder = new RecordingCommandRunner(dropping);
  const backend = new NftBackend({ runner: recorder, streams: ns.streams, ...options });
  let traffic: TrafficClient | undefined;
  const client = async () => {
    traffic ??= await TrafficClient.attach(ns);
    return traffic;
  };

  return {
    ns,
    recorder,
    backend,
    observeKernel: () => kernelView(ns),
    writeCount: () => recorder.count(isNftWrite),
    seedPartialState: async () => {
      await ns.must('nft', ['-f', '-'], HALF_MADE_RULESET);
    },
    seedForeignState: async () => {
      await ns.must('nft', ['-f', '-'], FOREIGN_RULESET);
      await ns.must('iptables-nft', ['-w', '-A', 'FORWARD', '-s', '10.244.0.0/16', '-j', 'ACCEPT']);
    },
    snapshotForeign: () => foreignTables(ns),
    failWrites: () => {
      dropping.failing = true;
    },
    sendBlockedTraffic: async (family) => {
      await (await client()).send(family);
    },
    hitSources: TrafficClient.SOURCES,
    sendHits: async (_family, source, destination, packets) => {
      await (await client()).sendFrom(source, destination, packets);
    },
    observeRecords: () => kernelRecords(ns),
    dispose: async () => {
      await Promise.allSettled([ns.delete(), ...(traffic ? [traffic.delete()] : [])]);
    },
  };
}
