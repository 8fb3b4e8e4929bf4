import { IPTABLES_CAPABILITIES } from '@route-controller/backend-iptables';
import { backendContractSuite } from '@route-controller/core/testing';
import { describe, it } from 'vitest';
import { iptablesFixture } from '../src/iptables-fixture.js';
import { describeKernel } from '../src/prerequisites.js';

// The core contract suite against iptables-legacy, each test in a fresh network namespace.
describeKernel('iptables-legacy backend on a real kernel', () => {
  backendContractSuite({
    name: 'iptables-legacy',
    test: { describe, it },
    // The fixture sends real packets through the lab node, so the traffic group runs.
    traffic: true,
    capabilities: IPTABLES_CAPABILITIES.legacy,
    unreadable: {
      skip: 'legacy tables are written only by iptables-legacy, which prints all it writes; a userspace missing an extension fails the read loudly (unit tests cover it)',
    },
    setup: () => iptablesFixture('legacy'),
    timeoutMs: 60_000,
  });
});
