import { backendContractSuite } from '@route-controller/core/testing';
import { describe, it } from 'vitest';
import { IPTABLES_CONTRACT_CAPABILITIES, iptablesFixture } from '../src/iptables-fixture.js';
import { describeKernel } from '../src/prerequisites.js';

// The core contract suite against iptables-nft, each test in a fresh network namespace.
describeKernel('iptables-nft backend on a real kernel', () => {
  backendContractSuite({
    name: 'iptables-nft',
    test: { describe, it },
    capabilities: IPTABLES_CONTRACT_CAPABILITIES,
    setup: () => iptablesFixture('nft'),
    timeoutMs: 60_000,
  });
});
