import http, { type IncomingMessage } from 'node:http';
import https from 'node:https';
import type { KubeConfig } from '@kubernetes/client-node';
import { KubeCredentials } from './kube-credentials.js';
import {
  type KubeRequest,
  type KubeResponse,
  type KubeTransport,
  TransportError,
  type WatchEvent,
  type WatchStream,
} from './transport.js';

/**
 * KubeTransport over node:http(s) and one kept-alive agent (KubeCredentials): client-node's
 * KubeConfig gives the TLS material and the credentials (token files, exec plugins, OIDC, client
 * certificates, proxies); every request of the agent reuses the same connection.
 *
 * Not client-node's Watch: in 1.4 it replaces a refused watch's Status body with the bare HTTP
 * status text (a 403 would no longer say which permission is missing), silently drops lines it
 * cannot parse, has no timeout, and opens a new connection per watch. Not its generated API classes
 * either: they too take a new agent per request, and one request function serves every resource.
 */
export class HttpKubeTransport implements KubeTransport {
  readonly #credentials: KubeCredentials;

  constructor(
    config: KubeConfig,
    readonly server: string,
  ) {
    this.#credentials = new KubeCredentials(config, server);
  }

  async request(request: KubeRequest): Promise<KubeResponse> {
    const response = await this.#send(request);
    const text = await readAll(response);
    return answer(response, parseBody(text));
  }

  async watch(request: KubeRequest): Promise<WatchStream | KubeResponse> {
    const response = await this.#send(request);
    const status = response.statusCode ?? 0;
    if (status !== 200) return answer(response, parseBody(await readAll(response)));
    return { status: 200, events: watchEvents(response) };
  }

  /** Closes the kept-alive connections. */
  close(): void {
    this.#credentials.close();
  }

  async #send(request: KubeRequest, retried = false): Promise<IncomingMessage> {
    const url = new URL(`${this.server.replace(/\/+$/, '')}${request.path}`);
    for (const [key, value] of Object.entries(request.query ?? {})) url.searchParams.set(key, value);
    const { agent, headers, auth } = await this.#credentials.forRequest();
    const body = request.body === undefined ? undefined : JSON.stringify(request.body);
    const options: https.RequestOptions = {
      method: request.method,
      agent,
      headers: {
        ...headers,
        Accept: 'application/json',
        // A PATCH is a JSON merge patch (RFC 7386): bumping an Event's count.
        ...(body === undefined
          ? {}
          : { 'Content-Type': request.method === 'PATCH' ? 'application/merge-patch+json' : 'application/json' }),
      },
      ...(auth ? { auth } : {}),
      signal: request.signal,
    };
    const client = url.protocol === 'https:' ? https : http;
    try {
      return await new Promise<IncomingMessage>((resolve, reject) => {
        const outgoing = client.request(url, options, resolve);
        outgoing.on('error', (error) => reject(Object.assign(error, { reusedSocket: outgoing.reusedSocket })));
        outgoing.end(body);
      });
    } catch (error) {
      // A kept-alive connection the server closed just as it was reused: a GET is sent again, once,
      // on a fresh connection (as Go's transport does for idempotent requests).
      const reused = (error as { reusedSocket?: boolean }).reusedSocket;
      const reset = (error as { code?: unknown }).code === 'ECONNRESET';
      if (reused && reset && !retried && request.method === 'GET' && !request.signal.aborted) {
        return this.#send(request, true);
      }
      throw networkError(error, request.signal);
    }
  }
}

function answer(response: IncomingMessage, body: unknown): KubeResponse {
  const seconds = Number(response.headers['retry-after']);
  return {
    status: response.statusCode ?? 0,
    body,
    ...(Number.isFinite(seconds) && seconds > 0 ? { retryAfterMs: seconds * 1000 } : {}),
  };
}

/** The events of a watch response, one JSON object per line. */
async function* watchEvents(response: IncomingMessage): AsyncGenerator<WatchEvent> {
  response.setEncoding('utf8');
  let pending = '';
  try {
    for await (const chunk of response as AsyncIterable<string>) {
      pending += chunk;
      let newline = pending.indexOf('\n');
      while (newline >= 0) {
        const line = pending.slice(0, newline).trim();
        pending = pending.slice(newline + 1);
        if (line !== '') yield parseEvent(line);
        newline = pending.indexOf('\n');
      }
    }
  } catch (error) {
    throw networkError(error);
  } finally {
    response.destroy();
  }
  if (pending.trim() !== '') yield parseEvent(pending.trim());
}

function parseEvent(line: string): WatchEvent {
  let parsed: unknown;
  try {
    parsed = JSON.parse(line);
  } catch (error) {
    throw new TransportError('malformed', `a watch line is not JSON: ${excerpt(line)}`, { cause: error });
  }
  const record = parsed as { type?: unknown; object?: unknown } | null;
  if (typeof record !== 'object' || record === null || typeof record.type !== 'string') {
    throw new TransportError('malformed', `a watch line is not a watch event: ${excerpt(line)}`);
  }
  return { type: record.type, object: record.object };
}

function readAll(response: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    let text = '';
    response.setEncoding('utf8');
    response.on('data', (chunk: string) => {
      text += chunk;
    });
    response.on('end', () => resolve(text));
    response.on('error', (error) => reject(networkError(error)));
  });
}

function parseBody(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

/** An abort stays an AbortError (the caller asked for it); anything else below HTTP is 'network'. */
function networkError(error: unknown, signal?: AbortSignal): unknown {
  if (signal?.aborted || (error instanceof Error && error.name === 'AbortError')) return error;
  const message = error instanceof Error ? error.message : String(error);
  return new TransportError('network', message, { cause: error });
}

function excerpt(line: string): string {
  return line.length > 120 ? `${line.slice(0, 120)}...` : line;
}
