import http from 'node:http';
import https from 'node:https';
import type { KubeConfig } from '@kubernetes/client-node';
import { once } from '@route-controller/core';

/**
 * How long an idle kept-alive connection is kept: under kube-apiserver's own idle timeout (90 s), so
 * the agent closes it first and never sends a request on a connection the server is closing.
 */
const IDLE_CONNECTION_MS = 60_000;
/** One connection for requests, one for the watch: more would only mean more connections per node. */
const MAX_CONNECTIONS = 2;

/** What one request is sent with. */
export interface RequestCredentials {
  readonly agent: http.Agent;
  readonly headers: Readonly<Record<string, string>>;
  /** user:password, for a kubeconfig with basic auth. */
  readonly auth?: string;
}

type TlsMaterial = Pick<
  https.AgentOptions,
  'ca' | 'cert' | 'key' | 'pfx' | 'passphrase' | 'rejectUnauthorized' | 'servername'
>;

interface Material {
  readonly tls: TlsMaterial;
  /** Headers that never change (Impersonate-User). */
  readonly headers: Readonly<Record<string, string>>;
  readonly auth?: string;
  /** client-node's agent, used only through a proxy (proxy-url): it builds the proxy agents. */
  readonly proxyAgent?: http.Agent;
}

/** KubeConfig's per-request authentication: private in client-node's typings, public in its JavaScript. */
type Authorize = (options: { headers: Record<string, string>; cert?: unknown; key?: unknown }) => Promise<void>;

/**
 * The connection material of one kubeconfig, from client-node: TLS (CA, client certificate, server
 * name, skip-verify) read once, and one kept-alive agent built from it, so every request of the
 * agent travels on the same connection (and a watch on a second one). Only the authentication is
 * applied per request, by client-node's own authenticators (token files re-read every minute, exec
 * plugins run again when their credential expires, OIDC tokens refreshed), so rotation still works.
 *
 * Not KubeConfig.applyToHTTPSOptions per request: in client-node 1.4 it builds a new agent with
 * keep-alive off on every call, so every request opened a new TCP (and TLS) connection.
 */
export class KubeCredentials {
  readonly #authorize: Authorize;
  readonly #material: () => Promise<Material>;
  #agent: { readonly agent: http.Agent; readonly cert: unknown; readonly key: unknown } | undefined;

  constructor(
    config: KubeConfig,
    readonly server: string,
  ) {
    const authorize = (config as unknown as { applyAuthorizationHeader?: unknown }).applyAuthorizationHeader;
    if (typeof authorize !== 'function') {
      // A client-node upgrade that renames it must fail the tests, not send requests without credentials.
      throw new Error('@kubernetes/client-node has no KubeConfig.applyAuthorizationHeader any more');
    }
    this.#authorize = authorize.bind(config) as Authorize;
    // Once: the public API reads the files and runs the authenticator (a failed exec plugin is tried again).
    this.#material = once(async () => {
      const options: https.RequestOptions = {};
      await config.applyToHTTPSOptions(options);
      const { Authorization: _perRequest, ...headers } = (options.headers ?? {}) as Record<string, string>;
      const tls: TlsMaterial = {
        ...(options.ca ? { ca: options.ca } : {}),
        ...(options.cert ? { cert: options.cert } : {}),
        ...(options.key ? { key: options.key } : {}),
        ...(options.pfx ? { pfx: options.pfx } : {}),
        ...(options.passphrase ? { passphrase: options.passphrase } : {}),
        ...(options.rejectUnauthorized === undefined ? {} : { rejectUnauthorized: options.rejectUnauthorized }),
        ...(options.servername ? { servername: options.servername } : {}),
      };
      const proxied = Boolean(config.getCurrentCluster()?.proxyUrl);
      return {
        tls,
        headers,
        ...(typeof options.auth === 'string' ? { auth: options.auth } : {}),
        ...(proxied && options.agent instanceof http.Agent ? { proxyAgent: options.agent } : {}),
      };
    });
  }

  /** The agent and headers for one request: the credentials applied now, the connection reused. */
  async forRequest(): Promise<RequestCredentials> {
    const material = await this.#material();
    const applied: { headers: Record<string, string>; cert?: unknown; key?: unknown } = {
      headers: { ...material.headers },
    };
    await this.#authorize(applied);
    const agent = material.proxyAgent ?? this.#agentFor(material.tls, applied.cert, applied.key);
    return { agent, headers: applied.headers, ...(material.auth ? { auth: material.auth } : {}) };
  }

  /** Closes the kept-alive connections (a watch in flight ends with them). */
  close(): void {
    this.#agent?.agent.destroy();
    this.#agent = undefined;
  }

  /**
   * The kept-alive agent, built once; built anew only when an exec plugin hands out a new client
   * certificate (the old connections carry the old one, so they are closed, as client-go does).
   */
  #agentFor(tls: TlsMaterial, execCert: unknown, execKey: unknown): http.Agent {
    const cert = execCert ?? tls.cert;
    const key = execKey ?? tls.key;
    if (this.#agent && this.#agent.cert === cert && this.#agent.key === key) return this.#agent.agent;
    this.#agent?.agent.destroy();
    const options: https.AgentOptions = {
      ...tls,
      ...(cert ? { cert: cert as string } : {}),
      ...(key ? { key: key as string } : {}),
      keepAlive: true,
      maxSockets: MAX_CONNECTIONS,
      maxFreeSockets: 1,
      scheduling: 'lifo',
      // Applies to idle sockets only: an idle kept-alive connection is closed after this long.
      timeout: IDLE_CONNECTION_MS,
    };
    const agent = this.server.startsWith('https:') ? new https.Agent(options) : new http.Agent(options);
    this.#agent = { agent, cert, key };
    return agent;
  }
}
