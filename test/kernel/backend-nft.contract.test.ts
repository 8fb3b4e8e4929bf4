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
    unreadable: {
      skip: 'nft reads back all that nft writes; the silent losses seen (an object of a newer kernel, e.g. an unknown set key type) need raw netlink to make, so unit tests cover them with a fake runner',
    },
    // A small bound for the record sets, so the records group can fill one with pings.
    setup: () => createNftFixture('nft', { records: { size: 8 } }),
    timeoutMs: 60_000,
  });
});
