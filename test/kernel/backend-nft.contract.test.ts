import { NFT_CAPABILITIES } from '@route-controller/backend-nft';
import { backendContractSuite } from '@route-controller/core/testing';
import { describe, it } from 'vitest';
import { createNftFixture } from '../src/nft-fixture.js';
import { describeKernel } from '../src/prerequisites.js';

// The core contract, against real nft in a fresh network namespace per test.
describeKernel('nft backend, real kernel', () => {
  backendContractSuite({
    name: 'nft',
    test: { describe, it },
    // The fixture sends real packets through the lab node, so the traffic group runs.
    traffic: true,
    capabilities: NFT_CAPABILITIES,
    // A small bound for the record sets, so the records group can fill one with pings.
    setup: () => createNftFixture('nft', { records: { size: 8 } }),
    timeoutMs: 60_000,
  });
});
