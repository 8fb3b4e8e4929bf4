import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ServiceCidrApiSource } from '../../packages/agent/src/discovery/service-cidr-source.js';
import { KubernetesConnection } from '../../packages/agent/src/kube-api/connection.js';
import type { KubeTransport } from '../../packages/agent/src/kube-api/transport.js';
import { createLogger } from '../../packages/agent/src/observability/logger.js';
import { FakeApiServer, type KubeconfigOptions, kubeconfigFor } from '../src/fake-apiserver.js';
import { makeTlsFixture, type TlsFixture } from '../src/tls-fixture.js';

/**
 * The agent's one API connection (KubernetesConnection: client-node's kubeconfig and credentials,
 * one kept-alive agent) against the test API server, counted on the wire by the server's own log
 * of TCP connections and requests: TLS with a client certificate, a token from an exec plugin that
 * expires, and a connection the server resets just as it is reused.
 */

const logger = createLogger('silent');
let dir: string;
let server: FakeApiServer;
const cleanups: (() => Promise<void> | void)[] = [];

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'rc-kube-connection-'));
  server = new FakeApiServer();
});

afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  await server.close();
  await rm(dir, { recursive: true, force: true });
});

/** The agent's connection to `url` with `options`; closed after the test. */
async function connect(url: string, options: KubeconfigOptions = {}): Promise<KubeTransport> {
  const file = join(dir, 'kubeconfig');
  await writeFile(file, kubeconfigFor(url, options));
  const connection = new KubernetesConnection(file, logger);
  cleanups.push(() => connection.close());
  const ready = connection.connect();
  if (ready.kind !== 'ready') throw new Error(`no connection: ${ready.message}`);
  return ready.transport;
}

const get = (transport: KubeTransport, path: string) =>
  transport.request({ method: 'GET', path, signal: AbortSignal.timeout(5_000) });

let tls: TlsFixture | undefined;
async function fixture(): Promise<TlsFixture> {
  tls ??= await makeTlsFixture();
  return tls;
}

describe("the agent's one connection to the API server", () => {
  it('TLS with a client certificate: discovery, list and watch share one connection; the rest a second', async () => {
    const { ca, serverKey, serverCert, clientCert, clientKey } = await fixture();
    const url = await server.listen({ tls: { key: serverKey, cert: serverCert, ca } });
    server.add('kubernetes', ['10.96.0.0/16']);
    const transport = await connect(url, { tls: { ca, clientCert, clientKey } });
    const source = new ServiceCidrApiSource({ connect: () => ({ kind: 'ready', transport }), logger });
    cleanups.push(() => source.close());
    source.start();
    expect((await source.read()).kind).toBe('cidrs');
    await until(() => server.openWatches === 1);
    // The client certificate authenticated every request (the server's x509 user is its CN).
    expect(new Set(server.requests.map((r) => r.user))).toEqual(new Set(['route-controller']));
    expect(server.connections).toHaveLength(1);

    // With the watch holding that connection, other requests use a second one, and keep using it.
    for (let i = 0; i < 5; i += 1) expect((await get(transport, '/api/v1/nodes')).status).toBe(200);
    expect(server.connections).toHaveLength(2);
    const byConnection = server.requests.map((r) => `${r.connection} ${r.watch ? 'watch' : r.path}`);
    expect(byConnection).toEqual([
      '1 /apis/networking.k8s.io/v1',
      '1 /apis/networking.k8s.io/v1/servicecidrs',
      '1 watch',
      ...Array.from({ length: 5 }, () => '2 /api/v1/nodes'),
    ]);
  });

  it('a token from an exec plugin is applied per request: expired, the plugin runs again, on the same connection', async () => {
    // The plugin hands out token-<n>-<expiry ms>, valid for 1 s; the server refuses one that expired.
    const plugin = join(dir, 'credential.cjs');
    const counter = join(dir, 'runs');
    await writeFile(
      plugin,
      `const fs = require('node:fs');
const runs = (fs.existsSync(${JSON.stringify(counter)}) ? Number(fs.readFileSync(${JSON.stringify(counter)}, 'utf8')) : 0) + 1;
fs.writeFileSync(${JSON.stringify(counter)}, String(runs));
const expiry = Date.now() + 1000;
process.stdout.write(JSON.stringify({
  apiVersion: 'client.authentication.k8s.io/v1', kind: 'ExecCredential',
  status: { token: 'token-' + runs + '-' + expiry, expirationTimestamp: new Date(expiry).toISOString() },
}));
`,
    );
    server.authenticate = (token) => {
      const expiry = Number(/^token-\d+-(\d+)$/.exec(token ?? '')?.[1]);
      return expiry > Date.now() ? (token?.split('-').slice(0, 2).join('-') ?? undefined) : undefined;
    };
    const url = await server.listen();
    const transport = await connect(url, { exec: { command: process.execPath, args: [plugin] } });
    expect((await get(transport, '/api/v1/nodes')).status).toBe(200);
    expect((await get(transport, '/api/v1/nodes')).status).toBe(200);
    await new Promise((resolve) => setTimeout(resolve, 1_200));
    expect((await get(transport, '/api/v1/nodes')).status).toBe(200);
    expect(server.requests.map((r) => [r.user, r.status])).toEqual([
      ['token-1', 200],
      ['token-1', 200],
      ['token-2', 200],
    ]);
    expect(server.connections).toHaveLength(1);
  });

  it('a GET on a kept-alive connection the server resets as it is reused is sent again on a fresh one', async () => {
    // A raw HTTP server: the first request on a connection is answered (kept alive), the second is
    // met with a reset, as when the server's idle timeout and the next request cross on the wire.
    const sockets: Socket[] = [];
    const raw: Server = createServer((socket) => {
      sockets.push(socket);
      let requests = 0;
      socket.on('data', () => {
        requests += 1;
        if (requests > 1) {
          socket.resetAndDestroy();
          return;
        }
        socket.write('HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}');
      });
      socket.on('error', () => {});
    });
    await new Promise<void>((resolve) => raw.listen(0, '127.0.0.1', resolve));
    cleanups.push(() => new Promise<void>((resolve) => raw.close(() => resolve())));
    cleanups.push(() => {
      for (const socket of sockets) socket.destroy();
    });
    const { port } = raw.address() as { port: number };
    const transport = await connect(`http://127.0.0.1:${port}`);
    expect((await get(transport, '/api/v1/nodes')).status).toBe(200);
    expect((await get(transport, '/api/v1/nodes')).status).toBe(200);
    expect(sockets).toHaveLength(2);
  });
});

async function until(check: () => boolean, timeoutMs = 5_000): Promise<void> {
  const start = Date.now();
  while (!check()) {
    if (Date.now() - start > timeoutMs) throw new Error('timed out');
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}
