import { type AgentProcess, httpGet, LAB, LoopLab } from '@route-controller/lab';
import { afterAll, afterEach, beforeAll, expect, it } from 'vitest';
import { agentCli, startAgent } from '../src/agent-bin.js';
import { type KubernetesApi, startKubernetesApi } from '../src/kubernetes-api.js';
import { kernelDropCounter, kernelRecords } from '../src/nft-fixture.js';
import { describeKernel } from '../src/prerequisites.js';

/**
 * Who dials stale ClusterIPs, end to end: the agent (nft backend, Kubernetes discovery from the test
 * API server, NODE_NAME lab-node, pod lookup and Events on) in the loop lab's node; two pods ping two
 * stale ClusterIPs per family. The first pod is a Pod of this node on the API server, the second is
 * not: the log and `status` name the first by its pod, the second by its address. Then the first
 * sweeps the Service range, and the log and the Events stay bounded while status counts every pair.
 */

const NODE = 'lab-node';
const METRICS = 'http://127.0.0.1:9772';

/** Destinations the sweep dials, one UDP packet each: more than a read may log, fewer than the set holds. */
const SWEEP = 300;

interface StatusJson {
  staleDestinations: {
    address: string;
    packets: number;
    bytes: number;
    lastSeenSecondsAgo: number;
    sources: { address: string; packets: number; pod?: string }[];
  }[];
  recording: { backend: string | null; recorded: boolean };
}

describeKernel('agent: who dials stale ClusterIPs, in the loop lab with two pods', () => {
  let lab: LoopLab;
  let api: KubernetesApi;
  let agent: AgentProcess;
  let cliEnv: Record<string, string>;

  /** The agent's lines about stale ClusterIPs dialled. */
  const dialled = () => agent.logs.filter((line) => line.msg === 'stale ClusterIP dialled');
  const summaries = () => agent.logs.filter((line) => line.msg === 'more stale ClusterIPs dialled than logged');
  const status = async () => {
    const result = await agentCli(lab.node, ['status', '--json'], cliEnv);
    expect(result.exitCode, result.stderr).toBe(0);
    return JSON.parse(result.stdout) as StatusJson;
  };
  const pod = (family: 'ipv4' | 'ipv6') => `default/web-7f9c4 (${LAB.pod[family]})`;

  beforeAll(async () => {
    lab = await LoopLab.create({ secondPod: true });
    api = await startKubernetesApi(lab.node);
    const { server, kubeconfig } = api;
    server.add('kubernetes', [LAB.serviceCidr.ipv4, LAB.serviceCidr.ipv6]);
    server.putPod('default', 'web-7f9c4', { nodeName: NODE, ips: [LAB.pod.ipv4, LAB.pod.ipv6] });
    server.putPod('default', 'elsewhere', { nodeName: 'other-node', ips: [LAB.secondPod.ipv4] });
    cliEnv = { KUBECONFIG: kubeconfig, NODE_NAME: NODE, DISCOVERY_SOURCES: 'servicecidr', POD_LOOKUP: 'true' };
    agent = startAgent(lab.node, {
      ...cliEnv,
      RESYNC_INTERVAL: '1s',
      METRICS_LISTEN_ADDRESS: '127.0.0.1:9772',
      STALE_CLUSTERIP_EVENTS: 'true',
    });
    await agent.waitForMessage('rules applied', 20_000);
    await agent.waitForMessage('recording who dials stale ClusterIPs');
  });

  afterEach((context) => {
    // Whether the agent is still there, and what it said: a failure here is often about it.
    if (context.task.result?.state === 'fail' && agent) {
      console.error(`agent running: ${agent.isRunning}; its log:\n${agent.dump()}`);
    }
  });

  afterAll(async () => {
    await agent?.stop('SIGKILL');
    await api?.close();
    await lab?.destroy();
  });

  it('logs each (destination, source) pair once, naming the pod of this node behind a source', async () => {
    for (const family of ['ipv4', 'ipv6'] as const) {
      expect(await lab.dial('pod', LAB.staleService[family], 4)).toEqual({ sent: 4, received: 0 });
      expect(await lab.dial('pod', LAB.otherStaleService[family], 2)).toEqual({ sent: 2, received: 0 });
      expect(await lab.dial('secondPod', LAB.staleService[family], 3)).toEqual({ sent: 3, received: 0 });
    }
    await expect.poll(() => dialled().length, { timeout: 15_000 }).toBe(6);
    // A read may fall in the middle of a ping run: a pair's first line counts what was recorded by then.
    const said = dialled().map((line) => {
      expect(line).toMatchObject({ level: 'warn', component: 'stale', notice: 'new-pair' });
      const who = line.pod ? `${line.pod} (${line.source})` : String(line.source);
      return { pair: `${line.destination} <- ${who}`, packets: Number(line.packets) };
    });
    const sent: [string, string, number][] = [
      [LAB.staleService.ipv4, pod('ipv4'), 4],
      [LAB.otherStaleService.ipv4, pod('ipv4'), 2],
      [LAB.staleService.ipv4, LAB.secondPod.ipv4, 3],
      [LAB.staleService.ipv6, pod('ipv6'), 4],
      [LAB.otherStaleService.ipv6, pod('ipv6'), 2],
      [LAB.staleService.ipv6, LAB.secondPod.ipv6, 3],
    ];
    expect(said.map((line) => line.pair).sort()).toEqual(sent.map(([to, from]) => `${to} <- ${from}`).sort());
    for (const [to, from, packets] of sent) {
      const count = said.find((line) => line.pair === `${to} <- ${from}`)?.packets ?? 0;
      expect(count, `${to} <- ${from}`).toBeGreaterThanOrEqual(1);
      expect(count, `${to} <- ${from}`).toBeLessThanOrEqual(packets);
    }
    // More packets of known pairs within the minute, over several resyncs: nothing more is said.
    expect(await lab.dial('pod', LAB.staleService.ipv4, 2)).toEqual({ sent: 2, received: 0 });
    // Three resyncs (RESYNC_INTERVAL=1s) at least: each reads the records.
    await new Promise((resolve) => setTimeout(resolve, 3_500));
    expect(dialled()).toHaveLength(6);
    expect(summaries()).toEqual([]);
  });

  it('status --json lists both destinations per family, most packets first, with the right sources and counts', async () => {
    const parsed = await status();
    expect(parsed.recording).toMatchObject({ backend: 'nft', recorded: true });
    const summary = parsed.staleDestinations.map((d) => ({
      address: d.address,
      packets: d.packets,
      sources: d.sources,
    }));
    expect(summary).toEqual([
      {
        address: LAB.staleService.ipv4,
        packets: 9,
        sources: [
          { address: LAB.pod.ipv4, packets: 6, pod: 'default/web-7f9c4' },
          { address: LAB.secondPod.ipv4, packets: 3 },
        ],
      },
      {
        address: LAB.staleService.ipv6,
        packets: 7,
        sources: [
          { address: LAB.pod.ipv6, packets: 4, pod: 'default/web-7f9c4' },
          { address: LAB.secondPod.ipv6, packets: 3 },
        ],
      },
      {
        address: LAB.otherStaleService.ipv4,
        packets: 2,
        sources: [{ address: LAB.pod.ipv4, packets: 2, pod: 'default/web-7f9c4' }],
      },
      {
        address: LAB.otherStaleService.ipv6,
        packets: 2,
        sources: [{ address: LAB.pod.ipv6, packets: 2, pod: 'default/web-7f9c4' }],
      },
    ]);
    for (const destination of parsed.staleDestinations) {
      expect(destination.bytes).toBeGreaterThan(destination.packets * 80);
      expect(destination.lastSeenSecondsAgo).toBeLessThan(120);
    }
    const human = await agentCli(lab.node, ['status'], cliEnv);
    expect(human.stdout).toContain(`  ${LAB.staleService.ipv4}: 9 packets,`);
    expect(human.stdout).toContain(`    from default/web-7f9c4 (${LAB.pod.ipv4}): 6 packets`);
    expect(human.stdout).toContain(`    from ${LAB.secondPod.ipv4}: 3 packets`);
  });

  it('/metrics counts the distinct stale destinations per family, and one Event per destination went to the Node', async () => {
    const metrics = (await httpGet(lab.node, `${METRICS}/metrics`)).body;
    expect(metrics).toContain('route_controller_stale_destinations{family="ipv4"} 2');
    expect(metrics).toContain('route_controller_stale_destinations{family="ipv6"} 2');
    const events = api.server.events() as unknown as {
      reason: string;
      involvedObject: { name: string };
      message: string;
      count: number;
    }[];
    expect(events.map((event) => event.reason)).toEqual(Array(4).fill('StaleClusterIP'));
    expect(new Set(events.map((event) => event.involvedObject.name))).toEqual(new Set([NODE]));
    expect(events.map((event) => /^stale ClusterIP (\S+) /.exec(event.message)?.[1]).sort()).toEqual(
      [LAB.staleService.ipv4, LAB.otherStaleService.ipv4, LAB.staleService.ipv6, LAB.otherStaleService.ipv6].sort(),
    );
    expect(events.every((event) => event.count >= 1)).toBe(true);
  });

  it('eight concurrent scrapes, five rounds: each answers the kernel counter of our rule, not a multiple of it', async () => {
    // Packets of its own first, so the counter is well above what a doubled answer could hide in.
    expect(await lab.dial('pod', LAB.staleService.ipv4, 5)).toEqual({ sent: 5, received: 0 });
    const before = await kernelDropCounter(lab.node);
    expect(before).toBeGreaterThanOrEqual(5);
    // One process inside the namespace sends the eight requests of a round at once.
    const script = `
      const url = '${METRICS}/metrics';
      const rounds = [];
      (async () => {
        for (let round = 0; round < 5; round += 1) {
          const texts = await Promise.all(Array.from({ length: 8 }, () => fetch(url).then((r) => r.text())));
          rounds.push(texts.map((text) => Number(/^route_controller_blocked_packets_total\\{family="ipv4"\\} (\\d+)$/m.exec(text)?.[1])));
        }
        process.stdout.write(JSON.stringify(rounds));
      })();`;
    const rounds = JSON.parse((await lab.node.must(process.execPath, ['-e', script])).stdout) as number[][];
    const after = await kernelDropCounter(lab.node);
    // Nothing was dialled meanwhile: the counter held still, and every answer is it.
    expect(after).toBe(before);
    expect(rounds).toEqual(Array.from({ length: 5 }, () => Array(8).fill(before)));
  });

  it(`a pod sweeping ${SWEEP} stale ClusterIPs: at most 10 pair lines and one summary, status and /metrics count them all`, async () => {
    const lines = dialled().length;
    const events = api.server.events().length;
    const destinations = Array.from({ length: SWEEP }, (_, n) => `10.96.${100 + Math.floor(n / 200)}.${(n % 200) + 1}`);
    const script = `
      const socket = require('node:dgram').createSocket('udp4');
      const destinations = ${JSON.stringify(destinations)};
      let sent = 0;
      for (const address of destinations) socket.send('x', 9, address, () => { if (++sent === destinations.length) socket.close(); });`;
    await lab.pod.must(process.execPath, ['-e', script]);
    // Every pair is either a line or counted in a summary (the sweep may straddle two reads).
    const newLines = () => dialled().length - lines;
    const summed = () => summaries().reduce((total, line) => total + Number(line.pairs), 0);
    await expect.poll(() => newLines() + summed(), { timeout: 15_000 }).toBe(SWEEP);
    // Two more reads: nothing more to say about a sweep that is over.
    await new Promise((resolve) => setTimeout(resolve, 2_500));
    expect(newLines() + summed()).toBe(SWEEP);
    expect(summaries().length).toBeGreaterThanOrEqual(1);
    expect(newLines()).toBeLessThanOrEqual(10 * summaries().length);
    for (const summary of summaries()) expect(summary).toMatchObject({ level: 'warn', see: 'route-controller status' });
    // The node's Events: the bucket's burst of 25 at most, the 4 of before included.
    expect(api.server.events().length - events).toBeLessThanOrEqual(25 - 4);
    const listed = (await status()).staleDestinations.map((d) => d.address);
    for (const address of destinations) expect(listed).toContain(address);
    const metrics = (await httpGet(lab.node, `${METRICS}/metrics`)).body;
    expect(metrics).toContain(`route_controller_stale_destinations{family="ipv4"} ${SWEEP + 2}`);
  });

  it('cleanup removes the records with the rules', async () => {
    await agent.stop('SIGTERM');
    const cleanup = await agentCli(lab.node, ['cleanup'], {});
    expect(cleanup.exitCode, cleanup.stderr).toBe(0);
    expect(await kernelRecords(lab.node)).toEqual([]);
    const parsed = await status();
    expect(parsed.staleDestinations).toEqual([]);
    expect(parsed.recording).toMatchObject({ backend: null, recorded: false });
  });
});
