import { type Availability, desiredState, ErrorCodes, parseCidrList } from '@route-controller/core';
import { MemoryBackend, MemoryKernel } from '@route-controller/core/testing';
import { pino } from 'pino';
import { describe, expect, it, vi } from 'vitest';
import type { BackendSet } from '../src/backends/backend-set.js';
import { cleanupCommand } from '../src/commands/cleanup.js';
import { loadConfig } from '../src/config/config.js';
import type { BackendName } from '../src/config/settings.js';
import { composeToolbox, createAgentContainer } from '../src/container.js';
import { TOKENS } from '../src/tokens.js';

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
    const backends = new Map<BackendName, MemoryBackend>();
    for (const name of ['nft', 'iptables-nft', 'iptables-legacy'] as const) {
      const backend = new MemoryBackend(new MemoryKernel(), { name });
      await backend.apply(desiredState(parseCidrList('10.96.0.0/16').cidrs));
      backends.set(name, backend);
    }
    const unreadable = backends.get('iptables-nft') as MemoryBackend;
    vi.spyOn(unreadable, 'probe').mockResolvedValue(UNREADABLE);
    const cleanup = vi.spyOn(unreadable, 'cleanup');
    const container = createAgentContainer(loadConfig({ LISTEN_ADDRESS: 'off', SERVICE_CIDRS: '10.96.0.0/16' }), {
      logger: pino({ level: 'silent' }),
      oneShot: true,
      overrides: (c) => c.register(TOKENS.Backends, { useValue: backends as BackendSet }),
    });
    const out: string[] = [];
    const err: string[] = [];
    const code = await cleanupCommand(composeToolbox(container), { out: (t) => out.push(t), err: (t) => err.push(t) });
    expect(code).toBe(1);
    expect(cleanup).not.toHaveBeenCalled();
    expect(unreadable.kernel.writes).toBe(1);
    expect(err.join('\n')).toMatch(
      /^iptables-nft: nothing removed, the firewall was left as it is: iptables-nft 1\.8\.9 .*incompatible.*\n {2}hint: route-controller writes nothing into a table it cannot read/,
    );
    expect(out).toEqual(['nft: removed 7 objects', 'iptables-legacy: removed 7 objects']);
  });
});
