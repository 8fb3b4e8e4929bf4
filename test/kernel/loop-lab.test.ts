import { LAB, LoopLab } from '@route-controller/lab';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { describeKernel } from '../src/prerequisites.js';

const handWrittenDrop = `table inet hand-drop {
  chain forward {
    type filter hook forward priority filter; policy accept;
    ip daddr ${LAB.serviceCidr.ipv4} drop
    ip6 daddr ${LAB.serviceCidr.ipv6} drop
  }
}
`;

describeKernel('loop lab', () => {
  let lab: LoopLab;
  beforeAll(async () => {
    lab = await LoopLab.create();
  });
  afterAll(async () => {
    await lab?.destroy();
  });

  it('loops without rules: hundreds of bounced packets for ten pings to a stale ClusterIP', async () => {
    const v4 = await lab.measureLoop('ipv4', 10);
    const v6 = await lab.measureLoop('ipv6', 10);
    console.log(`loop without rules, 10 pings: ${v4} IPv4 and ${v6} IPv6 packets bounced by the workstation`);
    expect(v4).toBeGreaterThan(200);
    expect(v6).toBeGreaterThan(200);
  });

  it('the live Service answers through kube-proxy-style DNAT, from a pod and from the node', async () => {
    for (const family of ['ipv4', 'ipv6'] as const) {
      expect(await lab.pingLiveServiceFromPod(family)).toEqual({ sent: 3, received: 3 });
      expect(await lab.pingLiveServiceFromNode(family)).toEqual({ sent: 3, received: 3 });
    }
  });

  it('a hand-written nft drop rule in the node ends the loop and spares the live Service', async () => {
    const before = await lab.nodeFirewall();
    await lab.node.must('nft', ['-f', '-'], handWrittenDrop);
    try {
      expect(await lab.measureLoop('ipv4', 10)).toBe(0);
      expect(await lab.measureLoop('ipv6', 10)).toBe(0);
      for (const family of ['ipv4', 'ipv6'] as const) {
        expect(await lab.pingLiveServiceFromPod(family)).toEqual({ sent: 3, received: 3 });
        expect(await lab.pingLiveServiceFromNode(family)).toEqual({ sent: 3, received: 3 });
      }
    } finally {
      await lab.node.must('nft', ['delete', 'table', 'inet', 'hand-drop']);
    }
    expect(await lab.nodeFirewall()).toBe(before);
    expect(await lab.measureLoop('ipv4', 2)).toBeGreaterThan(40);
  });
});
