import { ErrorCodes, parseCidrList } from '@route-controller/core';
import { describe, expect, it } from 'vitest';
import { assertSafeServiceCidrs } from '../src/node/cidr-safety.js';
import { parseIpv4DefaultGateways, parseIpv6DefaultGateways } from '../src/node/node-network.js';

const PROC_ROUTE = `Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT
eth0\t00000000\t010012AC\t0003\t0\t0\t0\t00000000\t0\t0\t0
eth0\t000012AC\t00000000\t0001\t0\t0\t0\t0000FFFF\t0\t0\t0
`;
const PROC_IPV6_ROUTE = `fc00f853000000000000000000000000 40 00000000000000000000000000000000 00 00000000000000000000000000000000 00000100 00000001 00000000 00000001     eth0
00000000000000000000000000000000 00 00000000000000000000000000000000 00 fc00f8530ccde7930000000000000001 00000400 00000001 00000000 00000003     eth0
00000000000000000000000000000000 00 00000000000000000000000000000000 00 00000000000000000000000000000000 ffffffff 00000001 00000000 00200200       lo
`;

describe('node network', () => {
  it('reads IPv4 default gateways from /proc/net/route', () => {
    expect(parseIpv4DefaultGateways(PROC_ROUTE)).toEqual(['172.18.0.1']);
  });

  it('reads IPv6 default gateways from /proc/net/ipv6_route, skipping unreachable defaults', () => {
    expect(parseIpv6DefaultGateways(PROC_IPV6_ROUTE)).toEqual(['fc00:f853:ccd:e793::1']);
  });

  it('refuses a Service CIDR containing a node address or the gateway, naming both', () => {
    const network = {
      addresses: [
        { interface: 'eth0', address: '172.18.0.2' },
        { interface: 'eth0', address: 'fc00:f853:ccd:e793::2' },
      ],
      gateways: ['172.18.0.1', 'fc00:f853:ccd:e793::1'],
    };
    expect(() => assertSafeServiceCidrs(parseCidrList('10.96.0.0/12,fd00:10:96::/112').cidrs, network)).not.toThrow();
    let error: unknown;
    try {
      assertSafeServiceCidrs(parseCidrList('172.18.0.0/16').cidrs, network);
    } catch (caught) {
      error = caught;
    }
    expect(error).toMatchObject({ code: ErrorCodes.UnsafeCidr });
    expect((error as Error).message).toContain('172.18.0.0/16 contains 172.18.0.2, an address of eth0');
    expect((error as Error).message).toContain('contains 172.18.0.1, the default gateway');
    expect(() => assertSafeServiceCidrs(parseCidrList('fc00:f853:ccd:e793::/64').cidrs, network)).toThrow(
      expect.objectContaining({ code: ErrorCodes.UnsafeCidr }),
    );
  });
});
