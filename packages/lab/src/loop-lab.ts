import type { IpFamily } from '@route-controller/core';
import { Netns } from './netns.js';

/**
 * The loop lab: the smallest network that shows the stale-ClusterIP loop.
 *
 *   pod ─┐                                 workstation
 *        ├─ node ── eth0 ─────────── eth0 ── (routes the Service CIDRs back to the node)
 * server ┘  (forwards; kube-proxy DNAT for one live Service; default route via the workstation)
 *
 * A packet from the pod to a stale ClusterIP gets no DNAT, so the node forwards it along its
 * default route to the workstation, which routes it straight back: it bounces until its TTL dies.
 * With `secondPod`, another pod namespace on the node: a second source of such packets.
 */

export const LAB = {
  serviceCidr: { ipv4: '10.96.0.0/16', ipv6: 'fd00:10:96::/112' },
  liveService: { ipv4: '10.96.0.10', ipv6: 'fd00:10:96::a' },
  /**
   * A Service with no ready endpoints (a Deployment scaled to 0), TCP port 80: kube-proxy REJECTs
   * new connections to it in the filter tables, so a client is refused at once.
   */
  endpointlessService: { ipv4: '10.96.0.20', ipv6: 'fd00:10:96::14' },
  endpointlessPort: 80,
  staleService: { ipv4: '10.96.0.99', ipv6: 'fd00:10:96::99' },
  /** A second stale ClusterIP, for who-dials-what: another address no Service owns. */
  otherStaleService: { ipv4: '10.96.5.5', ipv6: 'fd00:10:96::55' },
  pod: { ipv4: '10.244.1.2', ipv6: 'fd00:244:1::2' },
  /** The second pod (LoopLabOptions.secondPod), on a pod subnet of its own like a pod of another node's range. */
  secondPod: { ipv4: '10.244.3.2', ipv6: 'fd00:244:3::2' },
  server: { ipv4: '10.244.2.2', ipv6: 'fd00:244:2::2' },
  node: { ipv4: '172.18.0.2', ipv6: 'fc00:f853:ccd:e793::2' },
  workstation: { ipv4: '172.18.0.1', ipv6: 'fc00:f853:ccd:e793::1' },
} as const;

/**
 * Who writes kube-proxy's rules in the node, as kube-proxy would: the live Service's DNAT, and the
 * REJECT of new connections to the endpoint-less Service (filter FORWARD and OUTPUT -> KUBE-SERVICES
 * in the iptables modes; `service-endpoints-check` in the nftables mode).
 */
export type KubeProxyMode = 'iptables-nft' | 'iptables-legacy' | 'nft' | 'none';

export interface LoopLabOptions {
  readonly kubeProxy?: KubeProxyMode;
  /**
   * Appends an ACCEPT for pod traffic to filter FORWARD with this iptables flavour, as a CNI does
   * (`-A FORWARD -s 10.244.0.0/16 -j ACCEPT`, below kube-proxy's jump, which kube-proxy puts
   * first): it ends the filter chain for stale-ClusterIP packets, and only a chain that runs later
   * (or a rule above it) can still drop them.
   */
  readonly podAcceptRule?: 'iptables-nft' | 'iptables-legacy';
  /** Prefix of the namespaces' names (see Netns). */
  readonly prefix?: string;
  /** Adds a second pod namespace (LAB.secondPod): two sources dialling stale ClusterIPs. */
  readonly secondPod?: boolean;
}

export interface PingResult {
  readonly sent: number;
  readonly received: number;
}

/** How a TCP connect ended, and after how long (measured inside the pod, process start left out). */
export interface ConnectResult {
  readonly outcome: 'connected' | 'refused' | 'timeout' | 'error';
  /** The errno name for `refused` and `error` (ECONNREFUSED, EHOSTUNREACH, ...). */
  readonly code?: string;
  readonly ms: number;
}

export class LoopLab {
  #options: LoopLabOptions = {};

  private constructor(
    readonly pod: Netns,
    readonly server: Netns,
    readonly node: Netns,
    readonly workstation: Netns,
    /** The second pod, with LoopLabOptions.secondPod. */
    readonly secondPod?: Netns,
  ) {}

  static async create(options: LoopLabOptions = {}): Promise<LoopLab> {
    const made: Netns[] = [];
    try {
      const labels = ['pod', 'server', 'node', 'ws', ...(options.secondPod ? ['pod2'] : [])];
      for (const label of labels) made.push(await Netns.create(label, options.prefix));
      const [pod, server, node, workstation, secondPod] = made as [Netns, Netns, Netns, Netns, Netns | undefined];
      const lab = new LoopLab(pod, server, node, workstation, secondPod);
      lab.#options = options;
      await lab.#wire();
      if (secondPod) await lab.#wireSecondPod(secondPod);
      await lab.#kubeProxy(options.kubeProxy ?? 'iptables-nft');
      if (options.podAcceptRule) await lab.#podAccept(options.podAcceptRule);
      await lab.#loopCounters();
      return lab;
    } catch (error) {
      await Promise.allSettled(made.map((ns) => ns.delete()));
      throw error;
    }
  }

  get namespaces(): readonly Netns[] {
    return [this.pod, this.server, this.node, this.workstation, ...(this.secondPod ? [this.secondPod] : [])];
  }

  async destroy(): Promise<void> {
    await Promise.allSettled(this.namespaces.map((ns) => ns.delete()));
  }

  async #wire(): Promise<void> {
    const { pod, server, node, workstation: ws } = this;
    // No duplicate address detection: IPv6 addresses (link-local ones too) are usable at once.
    for (const ns of this.namespaces) {
      await ns.sysctl({ 'net.ipv6.conf.all.accept_dad': 0, 'net.ipv6.conf.default.accept_dad': 0 });
    }
    // veth pairs are created straight inside the namespaces: the host never sees an interface.
    await node.veth('pod0', pod, 'eth0');
    await node.veth('srv0', server, 'eth0');
    await node.veth('eth0', ws, 'eth0');
    await pod.addAddress('eth0', '10.244.1.2/24');
    await pod.addAddress('eth0', 'fd00:244:1::2/64');
    await server.addAddress('eth0', '10.244.2.2/24');
    await server.addAddress('eth0', 'fd00:244:2::2/64');
    await node.addAddress('pod0', '10.244.1.1/24');
    await node.addAddress('pod0', 'fd00:244:1::1/64');
    await node.addAddress('srv0', '10.244.2.1/24');
    await node.addAddress('srv0', 'fd00:244:2::1/64');
    await node.addAddress('eth0', '172.18.0.2/16');
    await node.addAddress('eth0', 'fc00:f853:ccd:e793::2/64');
    await ws.addAddress('eth0', '172.18.0.1/16');
    await ws.addAddress('eth0', 'fc00:f853:ccd:e793::1/64');
    for (const ns of [pod, server]) {
      await ns.must('ip', ['route', 'add', 'default', 'via', ns === pod ? '10.244.1.1' : '10.244.2.1']);
      await ns.must('ip', ['-6', 'route', 'add', 'default', 'via', ns === pod ? 'fd00:244:1::1' : 'fd00:244:2::1']);
    }
    await node.must('ip', ['route', 'add', 'default', 'via', LAB.workstation.ipv4]);
    await node.must('ip', ['-6', 'route', 'add', 'default', 'via', LAB.workstation.ipv6]);
    // The workstation routes the Service CIDRs (and the pod network) into the cluster, via the node.
    await ws.must('ip', ['route', 'add', LAB.serviceCidr.ipv4, 'via', LAB.node.ipv4]);
    await ws.must('ip', ['route', 'add', '10.244.0.0/16', 'via', LAB.node.ipv4]);
    await ws.must('ip', ['-6', 'route', 'add', LAB.serviceCidr.ipv6, 'via', LAB.node.ipv6]);
    await ws.must('ip', ['-6', 'route', 'add', 'fd00:244::/32', 'via', LAB.node.ipv6]);
    const router = {
      'net.ipv4.ip_forward': 1,
      'net.ipv6.conf.all.forwarding': 1,
      'net.ipv4.conf.all.send_redirects': 0,
      'net.ipv4.conf.all.rp_filter': 0,
      'net.ipv4.conf.default.rp_filter': 0,
    };
    await node.sysctl(router);
    await ws.sysctl(router);
  }

  async #wireSecondPod(pod2: Netns): Promise<void> {
    const { node } = this;
    await pod2.sysctl({ 'net.ipv6.conf.all.accept_dad': 0, 'net.ipv6.conf.default.accept_dad': 0 });
    await node.veth('pod1', pod2, 'eth0');
    await node.addAddress('pod1', '10.244.3.1/24');
    await node.addAddress('pod1', 'fd00:244:3::1/64');
    await pod2.addAddress('eth0', `${LAB.secondPod.ipv4}/24`);
    await pod2.addAddress('eth0', `${LAB.secondPod.ipv6}/64`);
    await pod2.must('ip', ['route', 'add', 'default', 'via', '10.244.3.1']);
    await pod2.must('ip', ['-6', 'route', 'add', 'default', 'via', 'fd00:244:3::1']);
  }

  async #kubeProxy(mode: KubeProxyMode): Promise<void> {
    if (mode === 'none') return;
    if (mode === 'nft') {
      // kube-proxy's nftables mode keeps its own "ip kube-proxy" / "ip6 kube-proxy" tables.
      await this.node.must('nft', ['-f', '-'], kubeProxyNftRuleset());
      return;
    }
    const flavour = mode === 'iptables-nft' ? 'nft' : 'legacy';
    for (const family of ['ipv4', 'ipv6'] as const) {
      const bin = `${family === 'ipv4' ? 'iptables' : 'ip6tables'}-${flavour}-restore`;
      await this.node.must(bin, ['--noflush'], `${kubeProxyNatRules(family)}${kubeProxyFilterRules(family)}`);
    }
  }

  /**
   * kube-proxy restarting on a node that already holds other rules: its filter rules made anew (and
   * the CNI's ACCEPT beside them), so its chains now come after every chain of the forward hook made
   * before them. Netfilter runs chains of equal priority in the order they were made: a drop at
   * priority filter made earlier would now run before kube-proxy's REJECT. iptables-nft and nft
   * modes (legacy tables live as long as the namespace, and keep their place).
   */
  async restartKubeProxy(): Promise<void> {
    const mode = this.#options.kubeProxy ?? 'iptables-nft';
    if (mode === 'nft') {
      for (const family of ['ip', 'ip6']) await this.node.must('nft', ['delete', 'table', family, 'kube-proxy']);
      await this.node.must('nft', ['-f', '-'], kubeProxyNftRuleset());
      return;
    }
    if (mode !== 'iptables-nft') throw new Error(`kube-proxy in ${mode} mode cannot be restarted in the lab`);
    for (const family of ['ip', 'ip6']) await this.node.must('nft', ['delete', 'table', family, 'filter']);
    for (const family of ['ipv4', 'ipv6'] as const) {
      const bin = `${family === 'ipv4' ? 'iptables' : 'ip6tables'}-nft-restore`;
      await this.node.must(bin, ['--noflush'], kubeProxyFilterRules(family));
    }
    if (this.#options.podAcceptRule === 'iptables-nft') await this.#podAccept('iptables-nft');
  }

  async #podAccept(flavour: 'iptables-nft' | 'iptables-legacy'): Promise<void> {
    const suffix = flavour === 'iptables-nft' ? 'nft' : 'legacy';
    await this.node.must(`iptables-${suffix}`, ['-w', '-A', 'FORWARD', '-s', '10.244.0.0/16', '-j', 'ACCEPT']);
    await this.node.must(`ip6tables-${suffix}`, ['-w', '-A', 'FORWARD', '-s', 'fd00:244::/32', '-j', 'ACCEPT']);
  }

  async #loopCounters(): Promise<void> {
    // Counted in the workstation: every time it sends a packet to the Service range back to the node.
    await this.workstation.must(
      'nft',
      ['-f', '-'],
      `table inet lab-loop {
  counter loop4 { }
  counter loop6 { }
  chain forward {
    type filter hook forward priority 0; policy accept;
    ip daddr ${LAB.serviceCidr.ipv4} counter name loop4
    ip6 daddr ${LAB.serviceCidr.ipv6} counter name loop6
  }
}
`,
    );
  }

  /** Packets to the Service range the workstation has bounced back so far. */
  async loopPackets(family: IpFamily): Promise<number> {
    const name = family === 'ipv4' ? 'loop4' : 'loop6';
    const result = await this.workstation.must('nft', ['-j', 'list', 'counter', 'inet', 'lab-loop', name]);
    const parsed = JSON.parse(result.stdout) as { nftables: { counter?: { packets: number } }[] };
    const counter = parsed.nftables.find((entry) => entry.counter)?.counter;
    if (!counter) throw new Error(`no counter ${name} in ${result.stdout}`);
    return counter.packets;
  }

  /**
   * Pings a stale ClusterIP from the pod and returns how many times the workstation bounced
   * those packets back: about 31 per ping with a TTL of 64 while the loop is open, 0 once closed.
   */
  async measureLoop(family: IpFamily, pings = 5): Promise<number> {
    const before = await this.loopPackets(family);
    await ping(this.pod, LAB.staleService[family], { count: pings, replyTimeoutSeconds: 0.2 });
    // Let the last bounces finish: a loop lasts a few milliseconds.
    await new Promise((resolve) => setTimeout(resolve, 100));
    return (await this.loopPackets(family)) - before;
  }

  /**
   * Pings `address` (a stale ClusterIP, say) from the pod or the second pod and returns the replies:
   * none while our rule drops them (or while they loop).
   */
  dial(from: 'pod' | 'secondPod', address: string, count = 3): Promise<PingResult> {
    const ns = from === 'pod' ? this.pod : this.secondPod;
    if (!ns) throw new Error('the lab has no second pod: create it with { secondPod: true }');
    return ping(ns, address, { count, replyTimeoutSeconds: 0.2 });
  }

  /**
   * Opens a TCP connection from the pod to `address`:`port` (the endpoint-less Service by default)
   * and says how it ended, within `timeoutMs`: refused at once by kube-proxy's REJECT, or a timeout
   * when a drop swallows the SYN. Timed inside the pod by node itself, its start-up left out.
   */
  async connect(
    family: IpFamily,
    options: { address?: string; port?: number; timeoutMs?: number } = {},
  ): Promise<ConnectResult> {
    const address = options.address ?? LAB.endpointlessService[family];
    const port = options.port ?? LAB.endpointlessPort;
    const result = await this.pod.exec(process.execPath, [
      '-e',
      CONNECT_SCRIPT,
      address,
      String(port),
      String(options.timeoutMs ?? 3000),
    ]);
    if (result.exitCode !== 0) throw new Error(`the connect probe failed: ${result.stderr}`);
    return JSON.parse(result.stdout) as ConnectResult;
  }

  /** Pings the live Service's ClusterIP from the pod (DNAT'ed to the server). */
  pingLiveServiceFromPod(family: IpFamily, count = 3): Promise<PingResult> {
    return ping(this.pod, LAB.liveService[family], { count });
  }

  /** Pings the live Service's ClusterIP from the node itself (locally generated, DNAT'ed in OUTPUT). */
  pingLiveServiceFromNode(family: IpFamily, count = 3): Promise<PingResult> {
    return ping(this.node, LAB.liveService[family], { count });
  }

  /** The node's whole firewall, every flavour, without counters: compare before and after. */
  async nodeFirewall(): Promise<string> {
    const parts: string[] = [];
    parts.push((await this.node.must('nft', ['-s', 'list', 'ruleset'])).stdout);
    for (const bin of ['iptables-legacy-save', 'ip6tables-legacy-save']) {
      const saved = (await this.node.must(bin, [])).stdout;
      // Comments carry timestamps and chain policies carry traffic counters: neither is a rule.
      parts.push(saved.replace(/^#.*\n/gm, '').replace(/\[\d+:\d+\]/g, '[0:0]'));
    }
    return parts.join('\n---\n');
  }

  /**
   * The node's rules, without the scaffolding a firewall tool needs before it can hold any: a
   * table whose only content is built-in chains with no rules and an accept policy. iptables
   * creates the filter table on first use and cannot always remove it (legacy tables live as long
   * as their kernel module); such a table changes no packet's fate.
   */
  async nodeRules(): Promise<string> {
    const parts: string[] = [];
    const ruleset = JSON.parse((await this.node.must('nft', ['-j', '-s', 'list', 'ruleset'])).stdout) as {
      nftables: Record<string, Record<string, unknown>>[];
    };
    const key = (o: Record<string, unknown>) => `${String(o.family)} ${String(o.table ?? o.name)}`;
    // A table holds content when it has a rule, a set or map, a regular chain (someone made it on
    // purpose, even empty) or a base chain whose policy is not accept.
    const busy = new Set<string>();
    for (const entry of ruleset.nftables) {
      const [kind, object] = Object.entries(entry)[0] ?? [];
      if (!object || kind === 'metainfo' || kind === 'table') continue;
      if (kind === 'chain' && object.hook !== undefined && object.policy === 'accept') continue;
      busy.add(key(object));
    }
    for (const entry of ruleset.nftables) {
      const [kind, object] = Object.entries(entry)[0] ?? [];
      if (!object || kind === 'metainfo') continue;
      const table = kind === 'table' ? `${String(object.family)} ${String(object.name)}` : key(object);
      if (busy.has(table)) parts.push(JSON.stringify(entry));
    }
    for (const bin of ['iptables-legacy-save', 'ip6tables-legacy-save']) {
      const saved = (await this.node.must(bin, [])).stdout.replace(/^#.*\n/gm, '').replace(/\[\d+:\d+\]/g, '[0:0]');
      for (const table of saved.split(/^(?=\*)/m)) {
        // Scaffolding: no rules, and only built-in chains with an ACCEPT policy (":NAME ACCEPT").
        const scaffolding = !/^-A /m.test(table) && !/^:\S+ (?!ACCEPT )/m.test(table);
        if (table.trim() && !scaffolding) parts.push(table);
      }
    }
    return parts.join('\n');
  }
}

/**
 * Pings `target` and counts replies. Errors (time exceeded) do not stop it: -W bounds the wait
 * for each reply, where -w would end ping at the first ICMP error.
 */
export async function ping(
  from: Netns,
  target: string,
  options: { count?: number; intervalSeconds?: number; replyTimeoutSeconds?: number; source?: string } = {},
): Promise<PingResult> {
  const count = options.count ?? 3;
  const args = ['-n', '-q', '-c', String(count), '-i', String(options.intervalSeconds ?? 0.05)];
  // -I <address>: from one of the namespace's addresses (a second pod address, say).
  if (options.source) args.push('-I', options.source);
  args.push('-W', String(options.replyTimeoutSeconds ?? 0.5), target);
  const result = await from.exec('ping', args);
  const match = /(\d+) packets transmitted, (\d+) received/.exec(result.stdout);
  if (!match) throw new Error(`unexpected ping output (exit ${result.exitCode}): ${result.stdout}${result.stderr}`);
  return { sent: Number(match[1]), received: Number(match[2]) };
}

/** One TCP connect, printed as a ConnectResult; argv: address, port, timeout in ms. */
const CONNECT_SCRIPT = `
const [host, port, timeout] = process.argv.slice(1);
const start = performance.now();
const socket = require('node:net').connect({ host, port: Number(port) });
const done = (outcome, code) => {
  process.stdout.write(JSON.stringify({ outcome, ...(code ? { code } : {}), ms: performance.now() - start }));
  socket.destroy();
  process.exit(0);
};
socket.setTimeout(Number(timeout), () => done('timeout'));
socket.on('connect', () => done('connected'));
socket.on('error', (error) => done(error.code === 'ECONNREFUSED' ? 'refused' : 'error', error.code));
`;

/** kube-proxy's iptables mode, as its proxier writes it (pkg/proxy/iptables): the live Service's DNAT. */
function kubeProxyNatRules(family: IpFamily): string {
  const prefix = family === 'ipv4' ? '32' : '128';
  return `*nat
:KUBE-SERVICES - [0:0]
-A PREROUTING -m comment --comment "kubernetes service portals" -j KUBE-SERVICES
-A OUTPUT -m comment --comment "kubernetes service portals" -j KUBE-SERVICES
-A KUBE-SERVICES -d ${LAB.liveService[family]}/${prefix} -m comment --comment "default/live cluster IP" -j DNAT --to-destination ${LAB.server[family]}
COMMIT
`;
}

/**
 * kube-proxy's iptables mode in filter: the REJECT of new connections to a Service without
 * endpoints, reached from FORWARD (pods) and OUTPUT (the node) through KUBE-SERVICES; kube-proxy
 * puts its jumps first.
 */
function kubeProxyFilterRules(family: IpFamily): string {
  const prefix = family === 'ipv4' ? '32' : '128';
  const rejectWith = family === 'ipv4' ? 'icmp-port-unreachable' : 'icmp6-port-unreachable';
  return `*filter
:KUBE-SERVICES - [0:0]
-I FORWARD 1 -m conntrack --ctstate NEW -m comment --comment "kubernetes service portals" -j KUBE-SERVICES
-I OUTPUT 1 -m conntrack --ctstate NEW -m comment --comment "kubernetes service portals" -j KUBE-SERVICES
-A KUBE-SERVICES -d ${LAB.endpointlessService[family]}/${prefix} -p tcp -m comment --comment "default/endpointless:http has no endpoints" -m tcp --dport ${LAB.endpointlessPort} -j REJECT --reject-with ${rejectWith}
COMMIT
`;
}

/**
 * kube-proxy's nftables mode, as its proxier writes it (pkg/proxy/nftables): the DNAT, and new
 * connections to a Service without endpoints sent to `reject-chain` from its filter-forward and
 * filter-output chains (priority dstnat - 10, -110: nft 1.0.6 takes dstnat on nat hooks only) through the
 * `no-endpoint-services` verdict map.
 */
function kubeProxyNftRuleset(): string {
  const table = (family: IpFamily) => {
    const ip = family === 'ipv4' ? 'ip' : 'ip6';
    const type = family === 'ipv4' ? 'ipv4_addr' : 'ipv6_addr';
    return `table ${ip} kube-proxy {
  map no-endpoint-services {
    type ${type} . inet_proto . inet_service : verdict
    elements = { ${LAB.endpointlessService[family]} . tcp . ${LAB.endpointlessPort} : goto reject-chain }
  }
  chain reject-chain { reject; }
  chain service-endpoints-check { ${ip} daddr . meta l4proto . th dport vmap @no-endpoint-services; }
  chain filter-forward { type filter hook forward priority -110; policy accept; ct state new jump service-endpoints-check; }
  chain filter-output { type filter hook output priority -110; policy accept; ct state new jump service-endpoints-check; }
  chain nat-prerouting { type nat hook prerouting priority dstnat; policy accept; ${ip} daddr ${LAB.liveService[family]} dnat to ${LAB.server[family]}; }
  chain nat-output { type nat hook output priority -100; policy accept; ${ip} daddr ${LAB.liveService[family]} dnat to ${LAB.server[family]}; }
}
`;
  };
  return `${table('ipv4')}${table('ipv6')}`;
}
