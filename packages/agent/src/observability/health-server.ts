import { createServer, type Server } from 'node:http';
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

/** /healthz (the process is alive), /readyz (rules applied and in step) and /metrics. */
@injectable()
export class HealthServer {
  #server: Server | undefined;
  private readonly logger: Logger;

  constructor(
    @inject(AgentMetrics) private readonly metrics: AgentMetrics,
    @inject(TOKENS.Readiness) private readonly readiness: ReadinessProbe,
    @inject(TOKENS.Logger) logger: Logger,
  ) {
    this.logger = logger.child({ component: 'http' });
  }

  async listen(address: ListenAddress): Promise<AddressInfo> {
    const server = createServer((request, response) => {
      const path = (request.url ?? '/').split('?')[0];
      if (request.method !== 'GET' && request.method !== 'HEAD') {
        response.writeHead(405, { allow: 'GET, HEAD' }).end();
        return;
      }
      if (path === '/healthz') {
        response.writeHead(200, { 'content-type': 'text/plain' }).end('ok\n');
      } else if (path === '/readyz') {
        const { ready, reason } = this.readiness();
        response.writeHead(ready ? 200 : 503, { 'content-type': 'text/plain' }).end(`${reason}\n`);
      } else if (path === '/metrics') {
        this.metrics.render().then(
          ({ contentType, text }) => response.writeHead(200, { 'content-type': contentType }).end(text),
          (error: unknown) => {
            this.logger.error({ err: error }, 'could not render metrics');
            response.writeHead(500).end();
          },
        );
      } else {
        response.writeHead(404, { 'content-type': 'text/plain' }).end('try /healthz, /readyz or /metrics\n');
      }
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', (error: NodeJS.ErrnoException) =>
        reject(
          new RouteControllerError(
            ErrorCodes.InvalidConfig,
            `cannot listen on ${address.host}:${address.port}: ${error.code ?? error.message}`,
            {
              hint: 'Set LISTEN_ADDRESS to a free host:port (another process may hold the port), or "off".',
              cause: error,
              details: { variable: 'LISTEN_ADDRESS', value: `${address.host}:${address.port}` },
            },
          ),
        ),
      );
      server.listen(address.port, address.host, () => resolve());
    });
    this.#server = server;
    return server.address() as AddressInfo;
  }

  async close(): Promise<void> {
    const server = this.#server;
    this.#server = undefined;
    if (!server) return;
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
}
