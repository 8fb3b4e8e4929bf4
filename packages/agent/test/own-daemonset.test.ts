import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../src/config/config.js';
import type { KubernetesConnection } from '../src/kube-api/connection.js';
import type { KubeResponse } from '../src/kube-api/transport.js';
import { type DaemonSetReading, decideAtStop, readingOf } from '../src/lifecycle/own-daemonset.js';
import { UninstallCheck } from '../src/lifecycle/uninstall-check.js';
import { FakeTransport } from './kube-transport-fake.js';

const REF = { namespace: 'route-controller', name: 'route-controller' };
const PATH = '/apis/apps/v1/namespaces/route-controller/daemonsets/route-controller';

/** The DaemonSet as the API server serves it. */
const daemonSet = (uid = 'uid-1', deleting = false): KubeResponse => ({
  status: 200,
  body: {
    kind: 'DaemonSet',
    apiVersion: 'apps/v1',
    metadata: {
      name: REF.name,
      namespace: REF.namespace,
      uid,
      ...(deleting ? { deletionTimestamp: '2026-12-07T10:00:00Z', finalizers: ['foregroundDeletion'] } : {}),
    },
    spec: {},
  },
});
/** The API server's Status bodies, word for word. */
const notFound: KubeResponse = {
  status: 404,
  body: {
    kind: 'Status',
    apiVersion: 'v1',
    metadata: {},
    status: 'Failure',
    message: 'daemonsets.apps "route-controller" not found',
    reason: 'NotFound',
    details: { name: 'route-controller', group: 'apps', kind: 'daemonsets' },
    code: 404,
  },
};
const forbidden: KubeResponse = {
  status: 403,
  body: {
    kind: 'Status',
    apiVersion: 'v1',
    metadata: {},
    status: 'Failure',
    message:
      'daemonsets.apps "route-controller" is forbidden: User "system:serviceaccount:route-controller:route-controller" cannot get resource "daemonsets" in API group "apps" in the namespace "route-controller"',
    reason: 'Forbidden',
    details: { name: 'route-controller', group: 'apps', kind: 'daemonsets' },
    code: 403,
  },
};

describe('what a GET of the own DaemonSet says', () => {
  it('reads it present, present and being deleted, or gone', () => {
    expect(readingOf(REF, daemonSet())).toEqual({ kind: 'present', uid: 'uid-1', deleting: false });
    expect(readingOf(REF, daemonSet('uid-1', true))).toEqual({ kind: 'present', uid: 'uid-1', deleting: true });
    expect(readingOf(REF, notFound)).toEqual({ kind: 'gone' });
  });

  it('takes only the NotFound of this very DaemonSet for gone: a 404 for a path not served says nothing', () => {
    const unserved: KubeResponse = {
      status: 404,
      body: {
        kind: 'Status',
        status: 'Failure',
        reason: 'NotFound',
        message: 'the server could not find the requested resource',
        details: {},
        code: 404,
      },
    };
    expect(readingOf(REF, unserved)).toMatchObject({ kind: 'unknown' });
    expect(readingOf(REF, { status: 404, body: '404 page not found' })).toMatchObject({ kind: 'unknown' });
    const other = {
      ...notFound,
      body: { ...(notFound.body as object), details: { name: 'other', kind: 'daemonsets' } },
    };
    expect(readingOf(REF, other)).toMatchObject({ kind: 'unknown' });
  });

  it('reads 401 and 403 as refused, anything else as unknown', () => {
    expect(readingOf(REF, forbidden)).toMatchObject({ kind: 'refused', status: 403 });
    expect(readingOf(REF, { status: 401, body: { kind: 'Status', message: 'Unauthorized', code: 401 } })).toMatchObject(
      {
        kind: 'refused',
        status: 401,
      },
    );
    expect(readingOf(REF, { status: 503, body: 'unavailable' })).toMatchObject({ kind: 'unknown' });
    expect(readingOf(REF, { status: 200, body: { kind: 'Status' } })).toMatchObject({ kind: 'unknown' });
  });
});

describe('the decision at stop: remove the rules only for a DaemonSet seen, and now going away', () => {
  const seen: DaemonSetReading = { kind: 'present', uid: 'uid-1', deleting: false };
  const cases: [string, DaemonSetReading | undefined, DaemonSetReading, boolean][] = [
    ['deleted (helm uninstall: background propagation)', seen, { kind: 'gone' }, true],
    ['being deleted (--cascade=foreground)', seen, { kind: 'present', uid: 'uid-1', deleting: true }, true],
    ['in place (a rolling update, a drain, a deleted pod)', seen, seen, false],
    [
      'replaced by a new one of the same name (installed again)',
      seen,
      { kind: 'present', uid: 'uid-2', deleting: false },
      false,
    ],
    [
      'the grant withdrawn since it was seen (helm deletes the RBAC next)',
      seen,
      { kind: 'refused', status: 403, message: 'forbidden' },
      true,
    ],
    ['the service account deleted since (401)', seen, { kind: 'refused', status: 401, message: 'Unauthorized' }, true],
    ['the API unreachable', seen, { kind: 'unknown', message: 'connect ECONNREFUSED' }, false],
    [
      'never seen: forbidden from the start',
      { kind: 'refused', status: 403, message: 'forbidden' },
      { kind: 'refused', status: 403, message: 'forbidden' },
      false,
    ],
    ['never seen: not found from the start (a wrong name)', { kind: 'gone' }, { kind: 'gone' }, false],
    ['never seen: no answer yet', undefined, { kind: 'gone' }, false],
  ];
  for (const [what, before, now, remove] of cases) {
    it(`${what}: ${remove ? 'removes' : 'keeps'} the rules`, () => {
      const decision = decideAtStop(before, now);
      expect(decision.remove).toBe(remove);
      expect(decision.reason).not.toBe('');
    });
  }
});

describe('UninstallCheck', () => {
  const connect = (transport: FakeTransport) => async () =>
    ({ connect: () => ({ kind: 'ready', transport }) }) as unknown as KubernetesConnection;
  const check = (transport: FakeTransport, env: Record<string, string> = {}) =>
    new UninstallCheck(
      loadConfig({ DAEMONSET_NAME: REF.name, POD_NAMESPACE: REF.namespace, LISTEN_ADDRESS: 'off', ...env }),
      connect(transport),
      pino({ level: 'silent' }),
    );
  const settle = async () => {
    for (let i = 0; i < 5; i += 1) await new Promise((resolve) => setImmediate(resolve));
  };

  it('reads its DaemonSet after start, and again at stop: gone means remove', async () => {
    let answer = daemonSet();
    const transport = new FakeTransport(() => answer);
    const uninstall = check(transport);
    uninstall.start();
    await settle();
    answer = notFound;
    expect(await uninstall.decide()).toMatchObject({ remove: true });
    expect(transport.requests.map((r) => `${r.method} ${r.path}`)).toEqual([`GET ${PATH}`, `GET ${PATH}`]);
  });

  it('keeps the rules when the DaemonSet is still there', async () => {
    const transport = new FakeTransport(() => daemonSet());
    const uninstall = check(transport);
    uninstall.start();
    await settle();
    expect(await uninstall.decide()).toMatchObject({ remove: false });
  });

  it('keeps the rules when the GET at stop gets no answer before its deadline', async () => {
    let hang = false;
    const transport = new FakeTransport((request) =>
      hang
        ? new Promise((_resolve, reject) => {
            if (request.signal.aborted) reject(new Error('aborted'));
            request.signal.addEventListener('abort', () => reject(new Error('aborted')), { once: true });
          })
        : daemonSet(),
    );
    const uninstall = check(transport);
    uninstall.start();
    await settle();
    hang = true;
    expect(await uninstall.decide()).toMatchObject({
      remove: false,
      reason: expect.stringContaining('no answer before the deadline'),
    });
  });

  it('does nothing without DAEMONSET_NAME, and nothing with CLEANUP_ON_EXIT (which removes the rules anyway)', async () => {
    const transport = new FakeTransport(() => daemonSet());
    const none = new UninstallCheck(
      loadConfig({ LISTEN_ADDRESS: 'off' }),
      connect(transport),
      pino({ level: 'silent' }),
    );
    none.start();
    await settle();
    expect(await none.decide()).toBeUndefined();
    check(transport, { CLEANUP_ON_EXIT: 'true' }).start();
    await settle();
    expect(transport.requests).toEqual([]);
  });
});
