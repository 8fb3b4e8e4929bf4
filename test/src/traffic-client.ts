import type { IpFamily } from '@route-controller/core';
import { SAMPLE_CIDRS } from '@route-controller/core/testing';
import { Netns, ping } from '@route-controller/lab';

/**
 * A client namespace whose pings to the contract suite's sample CIDRs the node forwards (out
 * again to the client, which does not forward and drops them): packets that cross the node's
 * forward hook, for the counters group of the contract suite.
 */
export class TrafficClient {
  /** The client's addresses, two per family: the sources of its packets. */
  static readonly SOURCES: Readonly<Record<IpFamily, readonly [string, string]>> = {
    ipv4: ['10.250.0.2', '10.250.0.3'],
    ipv6: ['fd00:250::2', 'fd00:250::3'],
  };

  private constructor(readonly client: Netns) {}

  static async attach(node: Netns): Promise<TrafficClient> {
    const client = await Netns.create('traffic');
    try {
      for (const ns of [node, client]) {
        await ns.sysctl({ 'net.ipv6.conf.all.accept_dad': 0, 'net.ipv6.conf.default.accept_dad': 0 });
      }
      await node.veth('c0', client, 'eth0');
      await node.addAddress('c0', '10.250.0.1/24');
      await node.addAddress('c0', 'fd00:250::1/64');
      for (const address of TrafficClient.SOURCES.ipv4) await client.addAddress('eth0', `${address}/24`);
      for (const address of TrafficClient.SOURCES.ipv6) await client.addAddress('eth0', `${address}/64`);
      await client.must('ip', ['route', 'add', 'default', 'via', '10.250.0.1']);
      await client.must('ip', ['-6', 'route', 'add', 'default', 'via', 'fd00:250::1']);
      await node.must('ip', ['route', 'add', '10.0.0.0/8', 'via', '10.250.0.2']);
      await node.must('ip', ['-6', 'route', 'add', 'fd00::/16', 'via', 'fd00:250::2']);
      await node.sysctl({
        'net.ipv4.ip_forward': 1,
        'net.ipv6.conf.all.forwarding': 1,
        'net.ipv4.conf.all.send_redirects': 0,
      });
      return new TrafficClient(client);
    } catch (error) {
      await client.delete();
      throw error;
    }
  }

  /** Three pings to an address in the first sample CIDR of `family`, through the node. */
  async send(family: IpFamily): Promise<void> {
    const cidr = SAMPLE_CIDRS[family][0] ?? '';
    const address = family === 'ipv4' ? cidr.replace(/0\/\d+$/, '1') : cidr.replace(/::\/\d+$/, '::1');
    await ping(this.client, address, { count: 3, replyTimeoutSeconds: 0.2 });
  }

  /** `packets` pings from `source` (one of SOURCES) to `destination`, through the node. */
  async sendFrom(source: string, destination: string, packets: number): Promise<void> {
    await ping(this.client, destination, { count: packets, replyTimeoutSeconds: 0.2, source });
  }

  async delete(): Promise<void> {
    await this.client.delete();
  }
}
