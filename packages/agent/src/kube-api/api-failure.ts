import { firstLine } from '@route-controller/core';
import type { KubeResponse } from './transport.js';

/** What went wrong talking to the API server, reduced to what a source must decide on. */
export interface ApiFailure {
  /** HTTP status, or undefined when the server could not be reached at all. */
  readonly status: number | undefined;
  /** The server's message (from its Status body) or the network error. */
  readonly message: string;
  /** How long the server asked to wait before the next request (Retry-After, or the Status's retryAfterSeconds). */
  readonly retryAfterMs?: number;
  /**
   * The server's watch cache is behind the resourceVersion asked for ("Too large resource version",
   * a 504 Timeout with the cause ResourceVersionTooLarge): only a list from etcd gets past it.
   */
  readonly tooLargeResourceVersion?: boolean;
}

/** A non-2xx answer, thrown by request helpers so the loops can classify it by status. */
export class ApiError extends Error {
  override readonly name = 'ApiError';

  constructor(readonly failure: ApiFailure) {
    super(describeFailure(failure));
  }
}

interface StatusBody {
  readonly message?: unknown;
  readonly code?: unknown;
  readonly details?: { readonly retryAfterSeconds?: unknown; readonly causes?: readonly { reason?: unknown }[] };
}

/** The failure an answer stands for: its status, the Status body's message (or its text), and how long to wait. */
export function failureOf(response: KubeResponse): ApiFailure {
  const body = response.body;
  if (typeof body === 'object' && body !== null) return fromStatus(body as StatusBody, response.status, response);
  const message =
    typeof body === 'string' && body.trim() !== '' ? firstLine(body.trim()) : `HTTP ${response.status} with no message`;
  return { status: response.status, message, ...retryAfter(undefined, response) };
}

/**
 * Reads an HTTP status and message out of a Status object (a watch ERROR event) or an error; a
 * Status carries its HTTP code as `code`.
 */
export function toApiFailure(error: unknown): ApiFailure {
  if (error instanceof ApiError) return error.failure;
  if (typeof error !== 'object' || error === null) return { status: undefined, message: String(error) };
  const code = (error as StatusBody).code;
  const status = typeof code === 'number' && Number.isInteger(code) && code >= 100 ? code : undefined;
  if (!(error instanceof Error)) return fromStatus(error as StatusBody, status);
  return { status, message: firstLine(error.message) };
}

function fromStatus(body: StatusBody, status: number | undefined, response?: KubeResponse): ApiFailure {
  const message =
    typeof body.message === 'string' ? firstLine(body.message) : `HTTP ${status ?? '?'}: ${JSON.stringify(body)}`;
  // client-go's isTooLargeResourceVersionError: the cause since 1.19, the message before.
  const tooLarge =
    (body.details?.causes ?? []).some((cause) => cause?.reason === 'ResourceVersionTooLarge') ||
    (status === 504 && message.includes('Too large resource version'));
  return {
    status,
    message,
    ...retryAfter(body, response),
    ...(tooLarge ? { tooLargeResourceVersion: true } : {}),
  };
}

function retryAfter(body: StatusBody | undefined, response: KubeResponse | undefined): { retryAfterMs?: number } {
  const seconds = body?.details?.retryAfterSeconds;
  const ms = response?.retryAfterMs ?? (typeof seconds === 'number' && seconds > 0 ? seconds * 1000 : undefined);
  return ms === undefined ? {} : { retryAfterMs: ms };
}

export function describeFailure(failure: ApiFailure): string {
  return failure.status === undefined ? failure.message : `HTTP ${failure.status}: ${failure.message}`;
}
