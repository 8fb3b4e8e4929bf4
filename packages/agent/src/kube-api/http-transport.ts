import http, { type IncomingMessage } from 'node:http';
import https from 'node:https';
import type { KubeConfig } from '@kubernetes/client-node';
import {
  type KubeRequest,
  type KubeResponse,
  type KubeTransport,
  TransportError,
  type WatchEvent,
  type WatchStream,
} from './transport.js';

/**
 * KubeTransport over node:http(s), with client-node's KubeConfig for what it is good at: TLS,
 * credentials (token files, exec plugins, client certificates) and proxies, applied afresh to each
 * request so rotated tokens are picked up.
 *
 * Not client-node's Watch: in 1.4 it replaces a refused watch's Status body with the bare HTTP
 * status text (a 403 would no longer say which permission is missing), silently drops lines it
 * cannot parse, and has no timeout. Not its generated API classes either: one request function
 * serves every resource (ServiceCIDRs in two versions, ConfigMaps, Nodes, a dry-run create).
 */
export class HttpKubeTransport implements KubeTransport {
  constructor(
    private readonly config: KubeConfig,
    readonly server: string,
  ) {}

  async request(request: KubeRequest): Promise<KubeResponse> {
    const response = await this.#send(request);
    const text = await readAll(response);
    return { status: response.statusCode ?? 0, body: parseBody(text) };
  }

  async watch(request: KubeRequest): Promise<WatchStream | KubeResponse> {
    const response = await this.#send(request);
    const status = response.statusCode ?? 0;
    if (status !== 200) return { status, body: parseBody(await readAll(response)) };
    return { status: 200, events: watchEvents(response) };
  }

  async #send(request: KubeRequest): Promise<IncomingMessage> {
    const url = new URL(`${this.server.replace(/\/+$/, '')}${request.path}`);
    for (const [key, value] of Object.entries(request.query ?? {})) url.searchParams.set(key, value);
    const options: https.RequestOptions = { method: request.method, headers: { Accept: 'application/json' } };
    await this.config.applyToHTTPSOptions(options);
    const body = request.body === undefined ? undefined : JSON.stringify(request.body);
    if (body !== undefined) {
      const type = request.method === 'PATCH' ? 'application/merge-patch+json' : 'application/json';
      options.headers = { ...options.headers, 'Content-Type': type };
    }
    const client = url.protocol === 'https:' ? https : http;
    return new Promise<IncomingMessage>((resolve, reject) => {
      const outgoing = client.request(url, { ...options, signal: request.signal }, resolve);
      outgoing.on('error', (error) => reject(networkError(error, request.signal)));
      outgoing.end(body);
    });
  }
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
