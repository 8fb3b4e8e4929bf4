import { describe, expect, it } from 'vitest';
import { type DemoReport, formatDemoReport } from '../src/demo/demo-report.js';
import { LAB } from '../src/loop-lab.js';

const report = (run: Partial<DemoReport['runs'][number]>): DemoReport => ({
  namespaces: [],
  serviceCidrs: LAB.serviceCidr,
  staleClusterIp: LAB.staleService,
  liveClusterIp: LAB.liveService,
  pings: 5,
  unprotected: { ipv4: 155, ipv6: 155 },
  unsupported: [],
  runs: [{ backend: 'nft', requested: 'auto', chosen: 'nft', reason: 'test', ok: true, ...run }],
  ok: true,
});

describe('the demo report: who dialled what', () => {
  it('prints each stale ClusterIP with its sources, naming the lab pods', () => {
    const text = formatDemoReport(
      report({
        dialled: [
          {
            address: LAB.staleService.ipv4,
            packets: 7,
            sources: [
              { address: LAB.pod.ipv4, packets: 5 },
              { address: '172.18.0.1', packets: 2 },
            ],
          },
          { address: LAB.otherStaleService.ipv4, packets: 3, sources: [{ address: LAB.secondPod.ipv4, packets: 3 }] },
        ],
      }),
    );
    expect(text).toContain(
      [
        '  who dialled what (route-controller status):',
        '    10.96.0.99: 7 packets from 10.244.1.2 (the pod, 5), 172.18.0.1 (2)',
        '    10.96.5.5: 3 packets from 10.244.3.2 (the second pod)',
      ].join('\n'),
    );
  });

  it('says why a backend recorded nothing', () => {
    expect(formatDemoReport(report({ backend: 'iptables-nft', dialledNote: 'it keeps none' }))).toContain(
      '  who dialled what: not recorded (it keeps none)',
    );
  });
});
