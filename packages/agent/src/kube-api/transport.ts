/**
 * The seam between the Kubernetes sources and HTTP. The reflector, the periodic reads and the stale
 * ClusterIP clients talk only to this interface, so unit tests script it (no network) and the HTTP
 * implementation stays small. Nothing here imports the Kubernetes client.
 */

export interface KubeRequest {
  /** PATCH sends its body as a JSON merge patch (RFC 7386). */
  readonly method: 'GET' | 'POST' | 'PATCH';
  /** A path under the API server's URL, such as /api/v1/nodes. */
  readonly path: string;
  readonly query?: Readonly<Record<string, string>>;
  /** Sent as JSON. */
  readonly body?: unknown;
  /** Ends the request (and a watch stream) when aborted. */
  readonly signal: AbortSignal;
}

/** An answer, whatever its status: a non-2xx is data (its body is the server's Status). */
export interface KubeResponse {
  readonly status: number;
  /** The parsed JSON body, or the raw text when it is not JSON. */
  readonly body: unknown;
  /** The Retry-After header (429, 503, ...), in milliseconds. */
  readonly retryAfterMs?: number;
}

/** One line of a watch stream. */
export interface WatchEvent {
  readonly type: string;
  readonly object: unknown;
}

/** A watch that the server accepted (200): its events until the server closes the stream. */
export interface WatchStream {
  readonly status: 200;
  readonly events: AsyncIterable<WatchEvent>;
}

export interface KubeTransport {
  /** The API server's URL, for logs and status. */
  readonly server: string;
  request(request: KubeRequest): Promise<KubeResponse>;
  /**
   * Opens a watch (the caller puts watch=true in the query). Resolves once the response headers are
   * in: a stream for a 200, else the status and its body. The stream's iterator throws a
   * TransportError ('malformed') for a line that is not a watch event, rather than skipping it.
   */
  watch(request: KubeRequest): Promise<WatchStream | KubeResponse>;
}

/**
 * A failure below HTTP (refused, reset, DNS, TLS) or a watch line that is not JSON. Anything else
 * a transport throws is unexpected, and the reflector treats it as such.
 */
export class TransportError extends Error {
  override readonly name = 'TransportError';

  constructor(
    readonly kind: 'network' | 'malformed',
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

export function isWatchStream(opening: WatchStream | KubeResponse): opening is WatchStream {
  return 'events' in opening;
}
