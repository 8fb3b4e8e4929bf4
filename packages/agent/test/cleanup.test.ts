import { type Availability, desiredState, ErrorCodes, parseCidrList } from '@route-controller/core';
import { MemoryBackend, MemoryKernel } from '@route-controller/core/testing';
import { pino } from 'pino';
import { afterEach, describe, expect, it, vi } from 'vitest';
import type { BackendSet } from '../src/backends/backend-set.js';
import { cleanupCommand } from '../src/commands/cleanup.js';
import { loadConfig } from '../src/config/config.js';
import type { BackendName } from '../src/config/settings.js';
import { composeToolbox, createAgentContainer } from '../src/container.js';
import { type AgentIdentity, AgentSocket } from '../src/lifecycle/agent-socket.js';
import { TOKENS } from '../src/tokens.js';

/** This file's own agent socket name: the host's real agent, if any, is never asked. */
const SOCKET = `rc-cleanup-test-${process.pid}`;

/** Memory backends each holding our rules, and the cleanup command over them. */
async function installed() {
  const backends = new Map<BackendName, MemoryBackend>();
  for (const name of ['nft', 'iptables-nft', 'iptables-legacy'] as const) {
    const backend = new MemoryBackend(new MemoryKernel(), { name });
    await backend.apply(desiredState(parseCidrList('10.96.0.0/16').cidrs));
    backends.set(name, backend);
  }
  const container = createAgentContainer(loadConfig({ LISTEN_ADDRESS: 'off', SERVICE_CIDRS: '10.96.0.0/16' }), {
    logger: pino({ level: 'silent' }),
    oneShot: true,
    overrides: (c) => {
      c.register(TOKENS.Backends, { useValue: backends as BackendSet });
      c.register(TOKENS.AgentSocketName, { useValue: SOCKET });
    },
  });
  const out: string[] = [];
  const err: string[] = [];
  const output = { out: (t: string) => out.push(t), err: (t: string) => err.push(t) };
  const cleanup = (force = false) => cleanupCommand(composeToolbox(container), output, { force });
  const present = async () =>
    (await Promise.all([...backends.values()].map(async (b) => (await b.observe()).present))).every(Boolean);
  return { backends, cleanup, out, err, present };
}

const UNREADABLE: Availability = {
  available: false,
  reason:
    "iptables-nft 1.8.9 (nf_tables) cannot be used: iptables-nft-save -t filter cannot show table ip filter in full: it printed \"# Table `filter' is incompatible, use 'nft' tool.\"",
  checks: [],
  warnings: [],
  failure: ErrorCodes.FirewallUnreadable,
};

describe('route-controller cleanup', () => {
  it('leaves a backend whose tables it cannot read as it is, says so, and fails; the others are cleaned', async () => {
    const { backends, cleanup: run, out, err } = await installed();
    const unreadable = backends.get('iptables-nft') as MemoryBackend;
    vi.spyOn(unreadable, 'probe').mockResolvedValue(UNREADABLE);
    const cleanup = vi.spyOn(unreadable, 'cleanup');
    const code = await run();
    expect(code).toBe(1);
    expect(cleanup).not.toHaveBeenCalled();
    expect(unreadable.kernel.writes).toBe(1);
    expect(err.join('\n')).toMatch(
      /^iptables-nft: nothing removed, the firewall was left as it is: iptables-nft 1\.8\.9 .*incompatible.*\n {2}hint: route-controller writes nothing into a table it cannot read/,
    );
    expect(out).toEqual(['nft: removed 7 objects', 'iptables-legacy: removed 7 objects']);
  });
});

describe('route-controller cleanup beside a running agent', () => {
  let socket: AgentSocket | undefined;
  const agentRuns = async (state: AgentIdentity['state']) => {
    socket = new AgentSocket(SOCKET, pino({ level: 'silent' }));
    await socket.bind(() => ({ agent: 'route-controller', version: '0.1.0', pid: 7, state, backend: 'nft' }));
  };
  afterEach(async () => {
    await socket?.close();
    socket = undefined;
  });

  it('refuses, changing nothing, while an agent runs: it would put the rules back at once', async () => {
    await agentRuns('running');
    const { cleanup, err, present } = await installed();
    expect(await cleanup()).toBe(1);
    expect(err.join('\n')).toMatch(
      /^error ERR_RC_AGENT_RUNNING: an agent runs on this node, route-controller 0\.1\.0 /,
    );
    expect(await present()).toBe(true);
  });

  it('refuses while one is starting too', async () => {
    await agentRuns('starting');
    const { cleanup, present } = await installed();
    expect(await cleanup()).toBe(1);
    expect(await present()).toBe(true);
  });

  it('removes the rules with --force, warning that the agent will repair them', async () => {
    await agentRuns('running');
    const { cleanup, err, present, backends } = await installed();
    expect(await cleanup(true)).toBe(0);
    expect(err.join('\n')).toMatch(/^warning: an agent runs on this node/);
    expect(await present()).toBe(false);
    for (const backend of backends.values()) expect((await backend.observe()).present).toBe(false);
  });

  it('goes ahead beside an agent that is stopping (it repairs nothing any more), and with no agent', async () => {
    await agentRuns('stopping');
    const stopping = await installed();
    expect(await stopping.cleanup()).toBe(0);
    expect(await stopping.present()).toBe(false);
    await socket?.close();
    const none = await installed();
    expect(await none.cleanup()).toBe(0);
    expect(none.err).toEqual([]);
  });
});
