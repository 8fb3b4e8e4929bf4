import { IPTABLES_CAPABILITIES } from '@route-controller/backend-iptables';
import { backendContractSuite } from '@route-controller/core/testing';
import { describe, it } from 'vitest';
import { iptablesFixture } from '../src/iptables-fixture.js';
import { describeKernel } from '../src/prerequisites.js';

// The core contract suite against iptables-nft, each test in a fresh network namespace.
describeKernel('iptables-nft backend on a real kernel', () => {
  backendContractSuite({
    name: 'iptables-nft',
    test: { describe, it },
    // The fixture sends real packets through the lab node, so the traffic group runs.
    traffic: true,
    capabilities: IPTABLES_CAPABILITIES.nft,
    // A native nft rule in ip filter makes iptables-nft-save print one comment and exit 0.
    unreadable: true,
    setup: () => iptablesFixture('nft'),
    timeoutMs: 60_000,
  });
});
