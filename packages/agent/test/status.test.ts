import {
  type BlockAction,
  DiscoveryChain,
  desiredState,
  EnvServiceCidrSource,
  ErrorCodes,
  parseCidrList,
} from '@route-controller/core';
import { MemoryBackend, MemoryKernel } from '@route-controller/core/testing';
import { pino } from 'pino';
import { afterEach, describe, expect, it, vi } from 'vitest';
import type { BackendSet } from '../src/backends/backend-set.js';
import { statusCommand } from '../src/commands/status.js';
import { loadConfig } from '../src/config/config.js';
import type { BackendName } from '../src/config/settings.js';
import { composeToolbox, createAgentContainer } from '../src/container.js';
import { type AgentIdentity, AgentSocket } from '../src/lifecycle/agent-socket.js';
import type { NodeNetworkReader } from '../src/node/node-network.js';
import { TOKENS } from '../src/tokens.js';

/** This file's own agent socket name: the host's real agent, if any, is never asked. */
const SOCKET = `rc-status-test-${process.pid}`;
const AGENT: AgentIdentity = {
  agent: 'route-controller',
  version: '0.1.0',
  pid: 4242,
  state: 'running',
  backend: 'nft',
};
let socket: AgentSocket | undefined;

/** An agent on this "node": the socket bound and answering `identity`. */
async function agentRuns(identity: AgentIdentity = AGENT): Promise<void> {
  socket = new AgentSocket(SOCKET, pino({ level: 'silent' }));
  await socket.bind(() => identity);
}

/** `route-controller status` over memory backends, on a node with address 172.18.0.2. */
async function status(
  env: Record<string, string>,
  prepare: (nft: MemoryBackend) => Promise<void>,
  discovery?: DiscoveryChain,
  others?: (backends: Map<BackendName, MemoryBackend>) => Promise<void>,
  json = false,
) {
  const backends = new Map<BackendName, MemoryBackend>();
  for (const name of ['nft', 'iptables-nft', 'iptables-legacy'] as const) {
    backends.set(name, new MemoryBackend(new MemoryKernel(), { name }));
  }
  await prepare(backends.get('nft') as MemoryBackend);
  await others?.(backends);
  const network: NodeNetworkReader = {
    read: async () => ({ addresses: [{ interface: 'eth0', address: '172.18.0.2' }], gateways: ['172.18.0.1'] }),
  };
  const container = createAgentContainer(loadConfig({ LISTEN_ADDRESS: 'off', KUBECONFIG: '/nonexistent', ...env }), {
    logger: pino({ level: 'silent' }),
    oneShot: true,
    overrides: (c) => {
      c.register(TOKENS.Backends, { useValue: backends as BackendSet });
      c.register(TOKENS.NodeNetwork, { useValue: network });
      c.register(TOKENS.AgentSocketName, { useValue: SOCKET });
      if (discovery) c.register(TOKENS.Discovery, { useValue: discovery });
    },
  });
  const out: string[] = [];
  const code = await statusCommand(
    composeToolbox(container),
    { json },
    { out: (t) => out.push(t), err: (t) => out.push(t) },
  );
  return { code, text: out.join('\n') };
}

const install =
  (cidrs: string, action: BlockAction = 'drop') =>
  (nft: MemoryBackend) =>
    nft.apply(desiredState(parseCidrList(cidrs).cidrs, action)).then(() => undefined);

describe('route-controller status', () => {
  afterEach(async () => {
    await socket?.close();
    socket = undefined;
  });

  it('says first that no agent runs on the node, and then speaks for none', async () => {
    const { text } = await status({ SERVICE_CIDRS: '10.96.0.0/16' }, install('10.100.0.0/16'));
    expect(text.split('\n')[0]).toMatch(/^agent: none runs on this node/);
    expect(text).toContain('warning: installed 10.100.0.0/16, but env says 10.96.0.0/16: no agent runs on this node');
    expect(text).not.toMatch(/agent will replace/);
    expect(text).toMatch(/^ {2}drift repair: none while no agent runs on this node$/m);
    const parsed = JSON.parse(
      (await status({ SERVICE_CIDRS: '10.96.0.0/16' }, install('10.96.0.0/16'), undefined, undefined, true)).text,
    ) as { agent: unknown };
    expect(parsed.agent).toEqual({ running: false });
  });

  it('names the agent it found on the node first, and only then says what that agent will do', async () => {
    await agentRuns();
    const { text } = await status({ SERVICE_CIDRS: '10.96.0.0/16' }, install('10.100.0.0/16'));
    expect(text.split('\n')[0]).toBe('agent: route-controller 0.1.0 (pid 4242, backend nft, running) on this node');
    expect(text).toContain(
      'warning: installed 10.100.0.0/16, but env says 10.96.0.0/16: the running agent will replace them at its next resync',
    );
    const parsed = JSON.parse(
      (await status({ SERVICE_CIDRS: '10.96.0.0/16' }, install('10.96.0.0/16'), undefined, undefined, true)).text,
    ) as { agent: unknown };
    expect(parsed.agent).toEqual({ running: true, ...AGENT });
  });

  it('speaks for no agent that is stopping', async () => {
    await agentRuns({ ...AGENT, state: 'stopping' });
    const { text } = await status({ SERVICE_CIDRS: '10.96.0.0/16' }, install('10.100.0.0/16'));
    expect(text.split('\n')[0]).toBe('agent: route-controller 0.1.0 (pid 4242, backend nft, stopping) on this node');
    expect(text).toContain('no agent runs on this node to replace them');
  });

  it('calls a flushed chain incomplete, never "mixed action"', async () => {
    const { text } = await status({ SERVICE_CIDRS: '10.96.0.0/16' }, async (nft) => {
      await install('10.96.0.0/16')(nft);
      nft.kernel.seed((objects) => {
        for (const key of [...objects.keys()]) if (key.includes('/rule/') || key.includes('/set/')) objects.delete(key);
      });
    });
    expect(text).toMatch(/^nft: objects of ours with no rules in them \(incomplete/m);
    expect(text).not.toContain('mixed action');
  });

  it('warns when the installed rules differ from what this command discovered', async () => {
    const { text } = await status({ SERVICE_CIDRS: '10.96.0.0/16' }, install('10.100.0.0/16'));
    expect(text).toContain('warning: installed 10.100.0.0/16, but env says 10.96.0.0/16');
  });

  it("points out that without the agent's environment nothing was discovered to compare with", async () => {
    const onlyEnv = new DiscoveryChain([new EnvServiceCidrSource(undefined)]);
    const { text } = await status({}, install('10.100.0.0/16'), onlyEnv);
    expect(text).toMatch(
      /warning: installed 10\.100\.0\.0\/16, but this command found no Service CIDRs .*SERVICE_CIDRS/,
    );
    const unreachable = await status({}, install('10.100.0.0/16'));
    expect(unreachable.text).toMatch(/warning: installed 10\.100\.0\.0\/16; servicecidr cannot answer now/);
  });

  it("warns about an installed range that contains the node's own address", async () => {
    const { text } = await status({ SERVICE_CIDRS: '10.96.0.0/16' }, install('10.96.0.0/16,172.18.0.0/16'));
    expect(text).toContain('warning: unsafe: 172.18.0.0/16 contains 172.18.0.2, an address of eth0');
  });

  it('says how drift is repaired with each backend, and names a backend whose tables cannot be read', async () => {
    await agentRuns();
    const { text } = await status(
      { SERVICE_CIDRS: '10.96.0.0/16' },
      async (nft) => {
        await install('10.96.0.0/16')(nft);
      },
      undefined,
      async (backends) => {
        const legacy = backends.get('iptables-legacy') as MemoryBackend;
        Object.assign(legacy, { capabilities: { ...legacy.capabilities, events: false } });
        await legacy.apply(desiredState(parseCidrList('10.96.0.0/16').cidrs));
        vi.spyOn(backends.get('iptables-nft') as MemoryBackend, 'probe').mockResolvedValue({
          available: false,
          reason: 'iptables-nft-save -t filter cannot show table ip filter in full',
          checks: [],
          warnings: [],
          failure: ErrorCodes.FirewallUnreadable,
        });
      },
    );
    expect(text).toMatch(
      /^nft: drop forwarded packets to 10\.96\.0\.0\/16\n(?: {2}ipv.*\n)* {2}drift repair: at once, from kernel change events \(the resync is the safety net\)$/m,
    );
    expect(text).toMatch(
      /^iptables-nft: cannot read its tables here, so rules of ours there would go unseen \(iptables-nft-save -t filter cannot show table ip filter in full\)$/m,
    );
    expect(text).toMatch(
      /^iptables-legacy: drop .*\n(?: {2}ipv.*\n)* {2}drift repair: at the next resync only \(RESYNC_INTERVAL\): iptables-legacy changes make no kernel change events$/m,
    );
  });

  it("shows where an installed backend's rules sit, and its probe's warnings (the iptables fallback)", async () => {
    const fallback =
      'the kernel has no ipv4 security table for iptables-legacy (...): a connection to a Service with no endpoints hangs';
    const { text } = await status(
      { SERVICE_CIDRS: '10.96.0.0/16' },
      async () => {},
      undefined,
      async (backends) => {
        const legacy = backends.get('iptables-legacy') as MemoryBackend;
        await legacy.apply(desiredState(parseCidrList('10.96.0.0/16').cidrs));
        vi.spyOn(legacy, 'probe').mockResolvedValue({
          available: true,
          reason: 'iptables-legacy 1.8.9 (legacy): binaries present, tables readable for IPv4 and IPv6',
          checks: [{ name: 'placement', ok: true, detail: 'ipv4: filter FORWARD position 1 (fallback: ...)' }],
          warnings: [fallback],
        });
        vi.spyOn(backends.get('iptables-nft') as MemoryBackend, 'probe').mockResolvedValue({
          available: true,
          reason: 'iptables-nft 1.8.9 (nf_tables)',
          checks: [{ name: 'placement', ok: true, detail: 'security table FORWARD (after filter)' }],
          warnings: [],
        });
      },
    );
    expect(text).toMatch(
      /^iptables-legacy: drop forwarded packets to 10\.96\.0\.0\/16\n {2}placement: ipv4: filter FORWARD position 1 \(fallback: \.\.\.\)\n {2}warning: the kernel has no ipv4 security table/m,
    );
    // Nothing installed there: no placement to speak of.
    expect(text).toMatch(/^iptables-nft: nothing installed$/m);
    expect(text).not.toContain('placement: security table');
  });

  it('has no warnings when the installed rules are what discovery says', async () => {
    const { code, text } = await status({ SERVICE_CIDRS: '10.96.0.0/16' }, install('10.96.0.0/16'));
    expect(code).toBe(0);
    expect(text).toMatch(/^nft: drop forwarded packets to 10\.96\.0\.0\/16$/m);
    expect(text).not.toContain('warning');
  });
});

describe('route-controller status: the stale ClusterIPs being dialled', () => {
  /** status over memory backends, the nft one holding our rules and these hits; pods named by `pods`. */
  async function staleStatus(json: boolean, options: { records?: boolean; hits?: boolean } = {}) {
    const backends = new Map<BackendName, MemoryBackend>();
    const kernel = new MemoryKernel();
    kernel.now = () => 10_000;
    for (const name of ['nft', 'iptables-nft', 'iptables-legacy'] as const) {
      const capabilities = name === 'nft' ? { records: options.records ?? true } : { records: false };
      backends.set(name, new MemoryBackend(name === 'nft' ? kernel : new MemoryKernel(), { name, capabilities }));
    }
    await install('10.96.0.0/16')(backends.get('nft') as MemoryBackend);
    if (options.hits !== false) {
      kernel.now = () => 6_000;
      kernel.hit('ipv4', '10.244.0.7', '10.96.5.5', 312, 26_208);
      kernel.hit('ipv4', '10.244.0.8', '10.96.0.99', 2, 168);
      kernel.now = () => 10_000;
      kernel.hit('ipv4', '172.18.0.1', '10.96.0.99', 1, 84);
    }
    const container = createAgentContainer(loadConfig({ LISTEN_ADDRESS: 'off', SERVICE_CIDRS: '10.96.0.0/16' }), {
      logger: pino({ level: 'silent' }),
      oneShot: true,
      overrides: (c) => {
        c.register(TOKENS.Backends, { useValue: backends as BackendSet });
        c.register(TOKENS.NodeNetwork, { useValue: { read: async () => ({ addresses: [], gateways: [] }) } });
        c.register(TOKENS.AgentSocketName, { useValue: SOCKET });
        c.register(TOKENS.PodNames, {
          useValue: {
            names: async (addresses: readonly string[]) =>
              new Map(addresses.flatMap((a) => (a === '10.244.0.7' ? [[a, 'default/web-7f9c4'] as const] : []))),
          },
        });
      },
    });
    const out: string[] = [];
    const code = await statusCommand(composeToolbox(container), { json }, { out: (t) => out.push(t), err: () => {} });
    return { code, text: out.join('\n') };
  }

  it('--json lists them under staleDestinations, most packets first, each source with its pod when known', async () => {
    const { code, text } = await staleStatus(true);
    expect(code).toBe(0);
    const parsed = JSON.parse(text) as { staleDestinations: unknown; recording: unknown };
    expect(parsed.staleDestinations).toEqual([
      {
        address: '10.96.5.5',
        packets: 312,
        bytes: 26208,
        lastSeenSecondsAgo: 4,
        sources: [{ address: '10.244.0.7', packets: 312, pod: 'default/web-7f9c4' }],
      },
      {
        address: '10.96.0.99',
        packets: 3,
        bytes: 252,
        lastSeenSecondsAgo: 0,
        sources: [
          { address: '10.244.0.8', packets: 2 },
          { address: '172.18.0.1', packets: 1 },
        ],
      },
    ]);
    expect(parsed.recording).toEqual({
      backend: 'nft',
      recorded: true,
      windowSeconds: 600,
      sets: [
        { family: 'ipv4', size: 4096, count: 3, full: false, timeoutSeconds: 600 },
        { family: 'ipv6', size: 4096, count: 0, full: false, timeoutSeconds: 600 },
      ],
    });
  });

  it('shows them to people, most packets first, with their sources', async () => {
    const { text } = await staleStatus(false);
    expect(text).toContain(
      [
        'Stale ClusterIPs dialled (recorded by nft over the last 10m, most packets first; no Service owns these addresses):',
        '  10.96.5.5: 312 packets, 26208 bytes, last 4s ago',
        '    from default/web-7f9c4 (10.244.0.7): 312 packets',
        '  10.96.0.99: 3 packets, 252 bytes, last 0s ago',
        '    from 10.244.0.8: 2 packets',
        '    from 172.18.0.1: 1 packet',
      ].join('\n'),
    );
  });

  it('says when none were dialled, and when the backend in use records none', async () => {
    expect((await staleStatus(false, { hits: false })).text).toContain(
      'Stale ClusterIPs dialled: none in the last 10m (recorded by nft)',
    );
    const unrecorded = await staleStatus(true, { records: false });
    const parsed = JSON.parse(unrecorded.text) as { staleDestinations: unknown[]; recording: { reason: string } };
    expect(parsed.staleDestinations).toEqual([]);
    expect(parsed.recording).toEqual({
      backend: 'nft',
      recorded: false,
      reason: expect.stringMatching(
        /^nft keeps no record of who dials stale ClusterIPs here: it needs nftables 1\.0\.6/,
      ),
    });
  });
});
