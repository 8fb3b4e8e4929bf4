import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { IpFamily } from '@route-controller/core';
import { type AgentProcess, LAB, LoopLab } from '@route-controller/lab';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { agentCli, startAgent } from '../src/agent-bin.js';
import { nodeRulesets } from '../src/firewall-compare.js';
import { forwardRules } from '../src/iptables-fixture.js';
import { describeKernel } from '../src/prerequisites.js';

/**
 * A kernel without iptable_security (ip6table_security), for iptables-legacy: this kernel has them
 * built in, so the node's `iptables-legacy-restore` and `ip6tables-legacy-restore` are wrapped (first
 * in the agent's PATH) to refuse any payload naming the security table exactly as 1.8.9 does there
 * ("unable to initialize table 'security'", exit 2, before touching anything), and to run the real
 * binary otherwise. The agent must fall back to filter FORWARD, say why once, and show it in `probe`
 * and `status`.
 */

const FAMILIES: readonly IpFamily[] = ['ipv4', 'ipv6'];
const SERVICE_CIDRS = `${LAB.serviceCidr.ipv4},${LAB.serviceCidr.ipv6}`;

function wrapperDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'rct-no-security-'));
  for (const [name, program] of [
    ['iptables-legacy-restore', 'iptables-restore'],
    ['ip6tables-legacy-restore', 'ip6tables-restore'],
  ] as const) {
    const file = join(dir, name);
    writeFileSync(
      file,
      `#!/bin/sh
payload=$(mktemp)
cat > "$payload"
if grep -q '^\\*security' "$payload"; then
  rm -f "$payload"
  printf '%s\\n' "${program} v1.8.9 (legacy): ${program}: unable to initialize table 'security'" "" "Error occurred at line: 1" "Try \\\`${program} -h' or '${program} --help' for more information." >&2
  exit 2
fi
/usr/sbin/${name} "$@" < "$payload"
status=$?
rm -f "$payload"
exit $status
`,
    );
    chmodSync(file, 0o755);
  }
  return dir;
}

describeKernel('agent: iptables-legacy on a kernel without the security table', () => {
  let lab: LoopLab;
  let dir: string;
  let env: Record<string, string>;
  let agent: AgentProcess;
  let rulesBefore: string;

  beforeAll(async () => {
    dir = wrapperDir();
    lab = await LoopLab.create({ kubeProxy: 'iptables-legacy', podAcceptRule: 'iptables-legacy' });
    rulesBefore = await nodeRulesets(lab.node);
    env = {
      SERVICE_CIDRS,
      FIREWALL_BACKEND: 'iptables-legacy',
      PATH: `${dir}:${process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin'}`,
    };
    agent = startAgent(lab.node, { ...env, RESYNC_INTERVAL: '1s' });
    await agent.waitForMessage('rules applied', 15_000);
  });
  afterAll(async () => {
    await agent?.stop('SIGKILL');
    await lab?.destroy();
    rmSync(dir, { recursive: true, force: true });
  });

  it('falls back to position 1 of filter FORWARD in its first apply, and ends the loops', async () => {
    for (const family of FAMILIES) {
      const forward = await forwardRules(lab.node, 'legacy', family, 'filter');
      expect(forward[0]).toMatch(/\(filter\)" -j ROUTE-CONTROLLER$/);
      expect(await lab.measureLoop(family, 4)).toBe(0);
    }
    // No security table was made: the kernel "refused" it.
    expect((await lab.node.exec('cat', ['/proc/net/ip_tables_names'])).stdout).not.toContain('security');
  });

  it('logs one warning per family naming the endpoint-less caveat, and none on the resyncs after', async () => {
    await new Promise((resolve) => setTimeout(resolve, 2_500));
    const warnings = agent.logs.filter((line) => line.msg === 'apply warning');
    expect(warnings.map((line) => [line.level, line.backend])).toEqual([
      ['warn', 'iptables-legacy'],
      ['warn', 'iptables-legacy'],
    ]);
    for (const [index, family] of FAMILIES.entries()) {
      expect(String(warnings[index]?.warning)).toMatch(
        new RegExp(`^the kernel has no ${family} security table .*Service with no endpoints hangs`),
      );
    }
  });

  it('the cost, as the warning says: the endpoint-less Service hangs instead of being refused', async () => {
    expect(await lab.connect('ipv4', { timeoutMs: 1500 })).toMatchObject({ outcome: 'timeout' });
  });

  it('`route-controller probe` and `status` show the fallback and why', async () => {
    const probe = await agentCli(lab.node, ['probe'], env);
    expect(probe.stdout).toMatch(
      /iptables-legacy: ok +placement: filter FORWARD position 1 \(fallback: the kernel has no security table for iptables-legacy\)/,
    );
    expect(probe.stdout).toMatch(/iptables-legacy: warning: the kernel has no ipv4 security table/);
    const status = await agentCli(lab.node, ['status'], env);
    expect(status.exitCode, status.stderr).toBe(0);
    expect(status.stdout).toMatch(
      /^iptables-legacy: drop forwarded packets to .*\n {2}placement: filter FORWARD position 1 \(fallback: .*\n {2}warning: the kernel has no ipv4 security table/m,
    );
  });

  it('a restarted agent finds the fallback in the kernel: it says so at start, tries security once, quietly, and writes nothing', async () => {
    await agent.stop('SIGTERM');
    agent = startAgent(lab.node, { ...env, RESYNC_INTERVAL: '1s' });
    await agent.waitForMessage('rules already in step', 15_000);
    const said = agent.logs.filter((line) => /no ipv4 security table/.test(JSON.stringify(line)));
    expect(said.length).toBeGreaterThanOrEqual(1);
    expect(agent.logs.filter((line) => line.msg === 'apply warning')).toEqual([]);
    expect(agent.logs.filter((line) => String(line.msg).startsWith('rules applied'))).toEqual([]);
    await agent.stop('SIGTERM');
  });

  it('cleanup leaves the node as it was', async () => {
    const result = await agentCli(lab.node, ['cleanup'], env);
    expect(result.exitCode, result.stderr).toBe(0);
    expect(await nodeRulesets(lab.node)).toBe(rulesBefore);
  });
});
