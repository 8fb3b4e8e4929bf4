import { backendContractSuite } from '@route-controller/core/testing';
import { describe, it } from 'vitest';
import { createNftFixture, NFT_CAPABILITIES } from '../src/nft-fixture.js';
import { describeKernel } from '../src/prerequisites.js';

// The core contract, against real nft in a fresh network namespace per test.
describeKernel('nft backend, real kernel', () => {
  backendContractSuite({
    name: 'nft',
    test: { describe, it },
    capabilities: NFT_CAPABILITIES,
    setup: () => createNftFixture(),
    timeoutMs: 60_000,
  });
});
