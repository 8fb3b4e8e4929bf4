import type { IpFamily } from '../src/cidr.js';
import type { BlockAction } from '../src/desired-state.js';
import type { BackendCapabilities } from '../src/firewall-backend.js';
import type { ContractFixture, KernelView } from '../src/testing/contract-suite.js';
import {
  MEMORY_OWNER,
  MemoryBackend,
  type MemoryBackendFlaw,
  MemoryKernel,
  type MemoryObject,
} from '../src/testing/memory-backend.js';

const ours = (key: string) => key.startsWith(`${MEMORY_OWNER}/`);

/** Reads the memory kernel directly, not through MemoryBackend: the contract suite's oracle. */
function view(kernel: MemoryKernel): KernelView {
  const entries = [...kernel.objects.entries()].filter(([key]) => ours(key));
  const actions = new Set(entries.flatMap(([, o]) => (o.kind === 'rule' && o.action ? [o.action] : [])));
  const elements = (family: IpFamily) => [...(kernel.objects.get(`${MEMORY_OWNER}/set/${family}`)?.elements ?? [])];
  return {
    present: entries.length > 0,
    action: actions.size === 1 ? ([...actions][0] as BlockAction) : null,
    ipv4: elements('ipv4'),
    ipv6: elements('ipv6'),
  };
}

export function memoryFixture(
  flaw?: MemoryBackendFlaw,
  capabilities?: BackendCapabilities,
): ContractFixture<MemoryBackend> {
  const kernel = new MemoryKernel();
  // A small bound, so the records group can fill a record set.
  const backend = new MemoryBackend(kernel, {
    recordSize: 8,
    ...(flaw ? { flaw } : {}),
    ...(capabilities ? { capabilities } : {}),
  });
  return {
    backend,
    observeKernel: async () => view(kernel),
    writeCount: () => kernel.writes,
    seedPartialState: async () =>
      kernel.seed((objects) => {
        // A crash after creating the chain (on an older version's hook) and one set.
        objects.set(`${MEMORY_OWNER}/chain`, { owner: MEMORY_OWNER, kind: 'chain', hook: 'input' });
        objects.set(`${MEMORY_OWNER}/set/ipv4`, { owner: MEMORY_OWNER, kind: 'set', elements: ['10.1.0.0/16'] });
      }),
    seedForeignState: async () =>
      kernel.seed((objects) => {
        const foreign: [string, MemoryObject][] = [
          ['user/table', { owner: 'user', kind: 'chain', hook: 'forward' }],
          ['user/set', { owner: 'user', kind: 'set', elements: ['10.96.0.0/16'] }],
          ['kube-proxy/KUBE-SERVICES', { owner: 'kube-proxy', kind: 'rule', action: 'drop' }],
        ];
        for (const [key, object] of foreign) objects.set(key, object);
      }),
    snapshotForeign: async () =>
      JSON.stringify(
        [...kernel.objects.entries()].filter(([key]) => !ours(key)).sort(([a], [b]) => a.localeCompare(b)),
        null,
        1,
      ),
    failWrites: () => {
      kernel.failure = new Error('Operation not permitted');
    },
    sendBlockedTraffic: async (family) => kernel.countBlocked(family, 3, 252),
    makeFamilyUnreadable: async (family) => {
      kernel.unreadable.add(family);
      // The memory kernel itself still sees everything: the independent dump.
      return async () => JSON.stringify([...kernel.objects.entries()]);
    },
    hitSources: { ipv4: ['10.250.0.2', '10.250.0.3'], ipv6: ['fd00:250::2', 'fd00:250::3'] },
    sendHits: async (family, source, destination, packets) => {
      kernel.hit(family, source, destination, packets, packets * (family === 'ipv4' ? 84 : 104));
    },
    observeRecords: async () =>
      [...kernel.objects.entries()]
        .filter(([key, object]) => ours(key) && object.kind === 'records')
        .flatMap(([, object]) =>
          (object.pairs ?? []).map(({ source, destination, packets }) => ({ source, destination, packets })),
        ),
    dispose: async () => {},
  };
}
