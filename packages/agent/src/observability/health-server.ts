import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { ErrorCodes, RouteControllerError } from '@route-controller/core';
import type { ListenAddress } from '../config/config.js';
import { inject, injectable } from '../di.js';
import { TOKENS } from '../tokens.js';
import type { Logger } from './logger.js';
import { AgentMetrics } from './metrics.js';

export interface Readiness {
  readonly ready: boolean;
  readonly reason: string;
}

export type ReadinessProbe = () => Readiness;

export interface Liveness {
  readonly alive: boolean;
  readonly reason: string;
}

export type LivenessProbe = () => Liveness;

/** What one listening address serves. */
export type EndpointRoute = 'health' | 'metrics';

/** Where the user asks for an endpoint, for error messages: the variable naming the address. */
export interface EndpointAddress extends ListenAddress {
  readonly variable: 'LISTEN_ADDRESS' | 'METRICS_LISTEN_ADDRESS';
}

/**
 * /healthz (the loop still completes attempts), /readyz (rules applied and in step) and /metrics, on one
 * address or, following kube-proxy, with /metrics on an address of its own (METRICS_LISTEN_ADDRESS,
 * e.g. 127.0.0.1:9772) so the kubelet can probe health on the node address while metrics stay local.
 */
@injectable()
export class HealthServer {
  readonly #servers: Server[] = [];
  private readonly logger: Logger;

  constructor(
    @inject(AgentMetrics) private readonly metrics: AgentMetrics,
    @inject(TOKENS.Readiness) private readonly readiness: ReadinessProbe,
    @inject(TOKENS.Liveness) private readonly liveness: LivenessProbe,
    @inject(TOKENS.Logger) logger: Logger,
  ) {
    this.logger = logger.child({ component: 'http' });
  }

  async listen(address: EndpointAddress, routes: ReadonlySet<EndpointRoute>): Promise<AddressInfo> {
    const paths = [
      ...(routes.has('health') ? ['/healthz', '/readyz'] : []),
      ...(routes.has('metrics') ? ['/metrics'] : []),
    ];
    // Loaded here, not at the top: with LISTEN_ADDRESS=off (and in one-shot commands) node:http and
    // what it pulls in are never loaded.
    const { createServer } = await import('node:http');
    const server = createServer((request, response) => {
      const path = (request.url ?? '/').split('?')[0];
      if (request.method !== 'GET' && request.method !== 'HEAD') {
        response.writeHead(405, { allow: 'GET, HEAD' }).end();
        return;
      }
      if (path === '/healthz' && routes.has('health')) {
        const { alive, reason } = this.liveness();
        response.writeHead(alive ? 200 : 503, { 'content-type': 'text/plain' }).end(`${reason}\n`);
      } else if (path === '/readyz' && routes.has('health')) {
        const { ready, reason } = this.readiness();
        response.writeHead(ready ? 200 : 503, { 'content-type': 'text/plain' }).end(`${reason}\n`);
      } else if (path === '/metrics' && routes.has('metrics')) {
        this.metrics.render().then(
          ({ contentType, text }) => response.writeHead(200, { 'content-type': contentType }).end(text),
          (error: unknown) => {
            this.logger.error({ err: error }, 'could not render metrics');
            response.writeHead(500).end();
          },
        );
      } else {
        const elsewhere = path === '/metrics' ? ' (/metrics is served on METRICS_LISTEN_ADDRESS)' : '';
        response.writeHead(404, { 'content-type': 'text/plain' }).end(`try ${paths.join(', ')}${elsewhere}\n`);
      }
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', (error: NodeJS.ErrnoException) =>
        reject(
          new RouteControllerError(
            ErrorCodes.InvalidConfig,
            `${address.variable}=${address.host}:${address.port} cannot be used: ${error.code ?? error.message}`,
            {
              hint: `Set ${address.variable} to a free host:port (another process, or another route-controller release, may hold the port), or "off".`,
              cause: error,
              details: { variable: address.variable, value: `${address.host}:${address.port}` },
            },
          ),
        ),
      );
      server.listen(address.port, address.host, () => resolve());
    });
    this.#servers.push(server);
    return server.address() as AddressInfo;
  }

  async close(): Promise<void> {
    const servers = this.#servers.splice(0);
    await Promise.all(
      servers.map((server) => {
        server.closeAllConnections();
        return new Promise<void>((resolve) => server.close(() => resolve()));
      }),
    );
  }
}
