import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { HealthServer, type Liveness } from '../src/observability/health-server.js';
import { AgentMetrics } from '../src/observability/metrics.js';

describe('HealthServer', () => {
  let liveness: Liveness = { alive: true, reason: 'ok' };
  const server = new HealthServer(
    new AgentMetrics('test'),
    () => ({ ready: false, reason: 'not protecting this node' }),
    () => liveness,
    pino({ level: 'silent' }),
  );
  afterEach(() => server.close());

  const get = async (port: number, path: string) => {
    const response = await fetch(`http://127.0.0.1:${port}${path}`);
    return { status: response.status, body: await response.text() };
  };

  it('serves health and metrics on one address by default', async () => {
    const { port } = await server.listen(
      { host: '127.0.0.1', port: 0, variable: 'LISTEN_ADDRESS' },
      new Set(['health', 'metrics'] as const),
    );
    expect(await get(port, '/healthz')).toEqual({ status: 200, body: 'ok\n' });
    expect(await get(port, '/readyz')).toEqual({ status: 503, body: 'not protecting this node\n' });
    expect((await get(port, '/metrics')).body).toContain('route_controller_ready 0');
  });

  it('answers /healthz 503 with the reason while the loop is not alive, 200 again once it is', async () => {
    const { port } = await server.listen(
      { host: '127.0.0.1', port: 0, variable: 'LISTEN_ADDRESS' },
      new Set(['health'] as const),
    );
    liveness = { alive: false, reason: 'no reconcile attempt has completed for 2m' };
    expect(await get(port, '/healthz')).toEqual({ status: 503, body: 'no reconcile attempt has completed for 2m\n' });
    liveness = { alive: true, reason: 'ok' };
    expect(await get(port, '/healthz')).toEqual({ status: 200, body: 'ok\n' });
  });

  it('keeps /metrics off the health address when metrics have their own', async () => {
    const health = await server.listen(
      { host: '127.0.0.1', port: 0, variable: 'LISTEN_ADDRESS' },
      new Set(['health'] as const),
    );
    const metrics = await server.listen(
      { host: '127.0.0.1', port: 0, variable: 'METRICS_LISTEN_ADDRESS' },
      new Set(['metrics'] as const),
    );
    expect(await get(health.port, '/metrics')).toMatchObject({
      status: 404,
      body: expect.stringContaining('METRICS_LISTEN_ADDRESS'),
    });
    expect((await get(metrics.port, '/metrics')).status).toBe(200);
    expect((await get(metrics.port, '/readyz')).status).toBe(404);
  });

  it('names the variable of an address that cannot be bound', async () => {
    const taken = await server.listen(
      { host: '127.0.0.1', port: 0, variable: 'LISTEN_ADDRESS' },
      new Set(['health'] as const),
    );
    await expect(
      server.listen(
        { host: '127.0.0.1', port: taken.port, variable: 'METRICS_LISTEN_ADDRESS' },
        new Set(['metrics'] as const),
      ),
    ).rejects.toMatchObject({ code: 'ERR_RC_INVALID_CONFIG', details: { variable: 'METRICS_LISTEN_ADDRESS' } });
  });
});
