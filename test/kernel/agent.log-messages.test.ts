import { type AgentProcess, LAB, type LogLine, LoopLab } from '@route-controller/lab';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { startAgent } from '../src/agent-bin.js';
import { describeKernel } from '../src/prerequisites.js';

/**
 * Log messages are constant, their values in fields, so an operator can count and alert on "this
 * message". The agent runs twice in the loop lab with different Service CIDRs, a different stale
 * ClusterIP and a different pod dialling it, each time through start, a drift repair, a stale dial
 * and SIGTERM: the two runs log the same set of messages, but for the one human summary at start.
 */

interface Run {
  readonly cidrs: string;
  readonly dialler: 'pod' | 'secondPod';
  readonly destination: { readonly ipv4: string };
}

const RUNS: readonly Run[] = [
  { cidrs: `${LAB.serviceCidr.ipv4},${LAB.serviceCidr.ipv6}`, dialler: 'pod', destination: LAB.staleService },
  // Wider ranges that still hold the lab's Service addresses, and another address from another pod.
  { cidrs: '10.96.0.0/15,fd00:10:96::/108', dialler: 'secondPod', destination: LAB.otherStaleService },
];

describeKernel('agent log messages', () => {
  let lab: LoopLab;
  const logs: LogLine[][] = [];

  beforeAll(async () => {
    lab = await LoopLab.create({ secondPod: true });
  });

  afterAll(async () => {
    await lab?.destroy();
  });

  /** One run, from a node without our rules to the agent's exit after SIGTERM. */
  async function run({ cidrs, dialler, destination }: Run): Promise<LogLine[]> {
    await lab.node.exec('nft', ['delete', 'table', 'inet', 'route-controller']);
    const agent: AgentProcess = startAgent(lab.node, { SERVICE_CIDRS: cidrs, RESYNC_INTERVAL: '1s' });
    try {
      await agent.waitForMessage('rules applied', 15_000);
      await agent.waitForMessage('following kernel change events', 15_000);
      // Another tool removes our table: the agent puts it back at once.
      await lab.node.must('nft', ['delete', 'table', 'inet', 'route-controller']);
      await agent.waitForMessage('drift repaired', 10_000);
      // A pod dials a stale ClusterIP: the next read of the records names the pair.
      expect(await lab.dial(dialler, destination.ipv4, 2)).toEqual({ sent: 2, received: 0 });
      await agent.waitForMessage('stale ClusterIP dialled', 10_000);
    } finally {
      await agent.stop('SIGTERM');
    }
    expect((await agent.exited).exitCode, agent.dump()).toBe(0);
    return agent.logs;
  }

  it('says each thing with the same constant message whatever the CIDRs and addresses, but for the start-up summary', async () => {
    for (const each of RUNS) logs.push(await run(each));
    const [first = [], second = []] = logs;
    // Every log line is the agent's JSON; none is stray text.
    expect([...first, ...second].filter((line) => line.level === 'raw')).toEqual([]);
    const messages = (lines: readonly LogLine[]) =>
      new Set(lines.filter((line) => line.summary !== true).map((line) => line.msg));
    const [a, b] = [messages(first), messages(second)];
    expect([...a].filter((msg) => !b.has(msg)).sort()).toEqual([]);
    expect([...b].filter((msg) => !a.has(msg)).sort()).toEqual([]);
    // The runs went through what they should, and the values are in fields.
    for (const msg of ['rules applied', 'drift repaired', 'stale ClusterIP dialled', 'stopping'])
      expect(a).toContain(msg);
    const applied = (lines: readonly LogLine[]) => lines.find((line) => line.msg === 'rules applied')?.cidrs;
    expect(applied(first)).toEqual([LAB.serviceCidr.ipv4, LAB.serviceCidr.ipv6]);
    expect(applied(second)).toEqual(['10.96.0.0/15', 'fd00:10:96::/108']);
    const dialled = (lines: readonly LogLine[]) => lines.find((line) => line.msg === 'stale ClusterIP dialled');
    expect(dialled(first)).toMatchObject({ destination: LAB.staleService.ipv4, source: LAB.pod.ipv4 });
    expect(dialled(second)).toMatchObject({ destination: LAB.otherStaleService.ipv4, source: LAB.secondPod.ipv4 });
    // The one line that may carry values in its message: the human summary, once per run.
    for (const lines of logs) expect(lines.filter((line) => line.summary === true)).toHaveLength(1);
  });
});
