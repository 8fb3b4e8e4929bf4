import {
  IPTABLES_CHAIN,
  IptablesBackend,
  type IptablesMode,
  isRestoreBinary,
} from '@route-controller/backend-iptables';
import type { BlockAction, CommandRequest, CommandResult, CommandRunner, IpFamily } from '@route-controller/core';
import { type ContractFixture, type KernelView, RecordingCommandRunner } from '@route-controller/core/testing';
import { Netns } from '@route-controller/lab';
import { TrafficClient } from './traffic-client.js';

/**
 * The iptables backend's contract fixture: a fresh namespace per test, the backend's commands
 * recorded at the seam, and an oracle that reads `iptables-save` with its own small parser (not
 * the backend's) so a bug shared by the backend's reader and writer cannot hide.
 */

const FAMILIES: readonly IpFamily[] = ['ipv4', 'ipv6'];
const other = (mode: IptablesMode): IptablesMode => (mode === 'nft' ? 'legacy' : 'nft');

export function binary(mode: IptablesMode, family: IpFamily, tool: '' | 'save' | 'restore'): string {
  return `${family === 'ipv4' ? 'iptables' : 'ip6tables'}-${mode}${tool ? `-${tool}` : ''}`;
}

/** The whole ruleset of one flavour and family, as `-save` prints it (creates no table). */
export async function saveAll(ns: Netns, mode: IptablesMode, family: IpFamily): Promise<string> {
  return (await ns.must(binary(mode, family, 'save'), [])).stdout;
}

/** The "-A <chain> ..." lines of one table of a save, in order. */
export function rulesOfTable(save: string, table: string): string[] {
  const out: string[] = [];
  let current = '';
  for (const line of save.split('\n')) {
    if (line.startsWith('*')) current = line.slice(1).trim();
    else if (current === table && /^(\[\d+:\d+\] )?-A /.test(line)) out.push(line.replace(/^\[\d+:\d+\] /, ''));
  }
  return out;
}

/** The "-A FORWARD ..." lines of `table` (security, where our jump lives, unless told otherwise). */
export async function forwardRules(
  ns: Netns,
  mode: IptablesMode,
  family: IpFamily,
  table: 'security' | 'filter' = 'security',
): Promise<string[]> {
  return rulesOfTable(await saveAll(ns, mode, family), table).filter((line) => line.startsWith('-A FORWARD '));
}

const jumpsTo = (chain: string) => new RegExp(`\\s-[jg] ${chain}(\\s|$)`);

/**
 * Reads our chains straight from `-save`, in the security table and in filter (the fallback, and
 * 0.1.0's leftovers): their CIDRs and actions, and whether anything of ours exists. A CIDR left in
 * both tables counts twice, so an upgrade that leaves the old chain behind does not pass.
 */
export async function kernelView(ns: Netns, mode: IptablesMode, chain = IPTABLES_CHAIN): Promise<KernelView> {
  const actions = new Set<BlockAction | 'other'>();
  const cidrs: Record<IpFamily, string[]> = { ipv4: [], ipv6: [] };
  let present = false;
  for (const family of FAMILIES) {
    const save = await saveAll(ns, mode, family);
    if (new RegExp(`^:${chain} `, 'm').test(save)) present = true;
    for (const line of [...rulesOfTable(save, 'security'), ...rulesOfTable(save, 'filter')]) {
      if (jumpsTo(chain).test(line)) present = true;
      if (!line.startsWith(`-A ${chain} `)) continue;
      const address = / -d (\S+)/.exec(line)?.[1];
      if (address) cidrs[family].push(address);
      actions.add(/ -j DROP(\s|$)/.test(line) ? 'drop' : / -j REJECT(\s|$)/.test(line) ? 'reject' : 'other');
    }
  }
  const [only] = actions;
  return {
    present,
    action: actions.size === 1 && only !== undefined && only !== 'other' ? only : null,
    ipv4: cidrs.ipv4,
    ipv6: cidrs.ipv6,
  };
}

/**
 * A save without anything of ours: no comment lines, no counters, none of our chain's lines nor
 * jumps to it. For the other flavour nothing is removed: we must never touch it at all.
 */
export function withoutOurs(save: string, chain: string | undefined): string {
  return save
    .split('\n')
    .filter((line) => !line.startsWith('#'))
    .filter(
      (line) =>
        chain === undefined ||
        !(line.startsWith(`:${chain} `) || line.startsWith(`-A ${chain} `) || jumpsTo(chain).test(line)),
    )
    .map((line) => line.replace(/ \[\d+:\d+\]$/, ''))
    .join('\n');
}

/** Makes `*-restore` fail as it does without privileges, for the contract's error group. */
export class WriteFailingRunner implements CommandRunner {
  failing = false;

  constructor(
    private readonly inner: CommandRunner,
    private readonly mode: IptablesMode,
  ) {}

  run(request: CommandRequest): Promise<CommandResult> {
    if (this.failing && /-restore$/.test(request.file)) {
      const stderr =
        this.mode === 'nft'
          ? `${request.file} v1.8.9 (nf_tables): Could not fetch rule set generation id: Permission denied (you must be root)\n`
          : "Fatal: can't open lock file /run/xtables.lock: Permission denied\n";
      return Promise.resolve({ exitCode: 4, stdout: '', stderr });
    }
    return this.inner.run(request);
  }
}

/** Writes a restore payload with the given flavour, outside the backend. */
export async function restoreInto(ns: Netns, mode: IptablesMode, family: IpFamily, payload: string): Promise<void> {
  await ns.must(binary(mode, family, 'restore'), ['--noflush', '-w', '5'], payload);
}

const PARTIAL: Readonly<Record<IpFamily, string>> = {
  // A crash half-way through a run: our chain in security with a stale CIDR and its jump pushed
  // below someone's ACCEPT; and what 0.1.0 left in filter: a stale CIDR, a stray rule, an older
  // uncommented jump at the top and its jump pushed down below someone's ACCEPT.
  ipv4: `*security
:ROUTE-CONTROLLER - [0:0]
-A ROUTE-CONTROLLER -d 10.2.0.0/16 -m comment --comment "route-controller: Service CIDR" -j DROP
-A FORWARD -s 10.244.0.0/16 -j ACCEPT
-A FORWARD -m comment --comment "route-controller: block forwarded traffic to Service CIDRs" -j ROUTE-CONTROLLER
COMMIT
*filter
:ROUTE-CONTROLLER - [0:0]
-A ROUTE-CONTROLLER -d 10.1.0.0/16 -m comment --comment "route-controller: Service CIDR" -j DROP
-A ROUTE-CONTROLLER -d 10.96.0.0/16 -j ACCEPT
-A FORWARD -j ROUTE-CONTROLLER
-A FORWARD -s 10.244.0.0/16 -j ACCEPT
-A FORWARD -m comment --comment "route-controller: block forwarded traffic to Service CIDRs" -j ROUTE-CONTROLLER
COMMIT
`,
  // 0.1.0's chain with a stale reject rule and no jump at all.
  ipv6: `*filter
:ROUTE-CONTROLLER - [0:0]
-A ROUTE-CONTROLLER -d fd00:1::/112 -m comment --comment "route-controller: Service CIDR" -j REJECT --reject-with icmp6-adm-prohibited
COMMIT
`,
};

const FOREIGN: Readonly<Record<IpFamily, string>> = {
  ipv4: `*filter
:USER-FW - [0:0]
-I FORWARD 1 -s 10.244.0.0/16 -j ACCEPT
-A USER-FW -s 192.0.2.0/24 -m comment --comment "user firewall" -j DROP
-A USER-FW -p tcp --dport 22 -j ACCEPT
-A INPUT -j USER-FW
COMMIT
*security
-A FORWARD -s 192.0.2.0/24 -j ACCEPT
-A OUTPUT -p tcp --dport 22 -j ACCEPT
COMMIT
*nat
:KUBE-SERVICES - [0:0]
-A PREROUTING -m comment --comment "kubernetes service portals" -j KUBE-SERVICES
-A OUTPUT -m comment --comment "kubernetes service portals" -j KUBE-SERVICES
-A KUBE-SERVICES -d 10.96.0.10/32 -p udp --dport 53 -j DNAT --to-destination 10.244.2.2:53
COMMIT
*mangle
:KUBE-IPTABLES-HINT - [0:0]
COMMIT
`,
  ipv6: `*filter
:USER-FW - [0:0]
-I FORWARD 1 -s fd00:244::/32 -j ACCEPT
-A USER-FW -s 2001:db8::/32 -m comment --comment "user firewall" -j DROP
-A INPUT -j USER-FW
COMMIT
*security
-A FORWARD -s 2001:db8::/32 -j ACCEPT
COMMIT
*nat
:KUBE-SERVICES - [0:0]
-A PREROUTING -m comment --comment "kubernetes service portals" -j KUBE-SERVICES
-A KUBE-SERVICES -d fd00:10:96::a/128 -p udp --dport 53 -j DNAT --to-destination [fd00:244:2::2]:53
COMMIT
`,
};

/** A namesake of ours in the other flavour: a backend reading or writing the wrong flavour trips on it. */
const DECOY: Readonly<Record<IpFamily, string>> = {
  ipv4: `*security
:ROUTE-CONTROLLER - [0:0]
-A ROUTE-CONTROLLER -d 10.96.0.0/16 -m comment --comment "route-controller: Service CIDR" -j DROP
-A FORWARD -m comment --comment "route-controller: block forwarded traffic to Service CIDRs" -j ROUTE-CONTROLLER
COMMIT
*filter
:ROUTE-CONTROLLER - [0:0]
-A ROUTE-CONTROLLER -d 10.96.0.0/16 -m comment --comment "route-controller: Service CIDR" -j DROP
-A FORWARD -m comment --comment "route-controller: block forwarded traffic to Service CIDRs" -j ROUTE-CONTROLLER
-A FORWARD -i eth9 -j ACCEPT
COMMIT
`,
  ipv6: `*filter
-A FORWARD -i eth9 -j ACCEPT
COMMIT
`,
};

const FOREIGN_NFT_TABLE = `table inet rct-foreign {
  set blocked {
    type ipv4_addr
    flags interval
    elements = { 10.96.0.0/16 }
  }
  chain user_forward {
    type filter hook forward priority 10; policy accept;
    ip daddr @blocked counter
  }
}
`;

export interface IptablesFixture extends ContractFixture<IptablesBackend> {
  readonly ns: Netns;
  readonly recorder: RecordingCommandRunner;
}

export async function iptablesFixture(mode: IptablesMode): Promise<IptablesFixture> {
  const ns = await Netns.create(`ipt-${mode}`);
  const failing = new WriteFailingRunner(ns.runner, mode);
  const recorder = new RecordingCommandRunner(failing);
  const backend = new IptablesBackend({ mode, runner: recorder, streams: ns.streams });
  let traffic: TrafficClient | undefined;
  return {
    ns,
    recorder,
    backend,
    observeKernel: () => kernelView(ns, mode),
    // A write is a restore run that can change something: probe's `-restore --version` cannot.
    writeCount: () => recorder.count((request) => isRestoreBinary(request.file) && !request.args.includes('--version')),
    seedPartialState: async () => {
      for (const family of FAMILIES) await restoreInto(ns, mode, family, PARTIAL[family]);
    },
    seedForeignState: async () => {
      for (const family of FAMILIES) {
        await restoreInto(ns, mode, family, FOREIGN[family]);
        await restoreInto(ns, other(mode), family, DECOY[family]);
      }
      await ns.must('nft', ['-f', '-'], FOREIGN_NFT_TABLE);
    },
    snapshotForeign: async () => {
      const parts: string[] = [];
      for (const family of FAMILIES) {
        parts.push(`## ${mode} ${family}`, withoutOurs(await saveAll(ns, mode, family), IPTABLES_CHAIN));
        parts.push(`## ${other(mode)} ${family}`, withoutOurs(await saveAll(ns, other(mode), family), undefined));
      }
      const table = await ns.exec('nft', ['-s', 'list', 'table', 'inet', 'rct-foreign']);
      parts.push('## nft inet rct-foreign', table.exitCode === 0 ? table.stdout : '(none)');
      return parts.join('\n');
    },
    failWrites: () => {
      failing.failing = true;
    },
    sendBlockedTraffic: async (family) => {
      traffic ??= await TrafficClient.attach(ns);
      await traffic.send(family);
    },
    ...(mode === 'nft'
      ? {
          makeFamilyUnreadable: async (family: IpFamily) => {
            await makeFilterUnreadable(ns, family);
            // nft still reads what iptables-nft no longer can.
            return async () => (await ns.must('nft', ['-s', 'list', 'table', nftFamily(family), 'filter'])).stdout;
          },
        }
      : {}),
    dispose: async () => {
      await traffic?.delete();
      await ns.delete();
    },
  };
}

const nftFamily = (family: IpFamily) => (family === 'ipv4' ? 'ip' : 'ip6');

/**
 * What a user's nftables.conf, firewalld or a newer iptables does to a node: a native nft rule in
 * iptables-nft's filter table that iptables-nft cannot translate. From then on `iptables-nft-save
 * -t filter` prints only "# Table `filter' is incompatible, use 'nft' tool." and exits 0, and
 * iptables-nft-restore writes anyway. (`meta l4proto udp` would not do: 1.8.9 translates it.)
 */
export async function makeFilterUnreadable(ns: Netns, family: IpFamily): Promise<void> {
  const table = `${nftFamily(family)} filter`;
  await ns.must(
    'nft',
    ['-f', '-'],
    `add table ${table}
add chain ${table} FORWARD { type filter hook forward priority 0; policy accept; }
add rule ${table} FORWARD ct state established,related counter accept
`,
  );
}
