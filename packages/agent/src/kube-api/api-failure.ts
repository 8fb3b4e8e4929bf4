import { firstLine } from '@route-controller/core';
import type { KubeResponse } from './transport.js';

/** What went wrong talking to the API server, reduced to what a source must decide on. */
export interface ApiFailure {
  /** HTTP status, or undefined when the server could not be reached at all. */
  readonly status: number | undefined;
  /** The server's message (from its Status body) or the network error. */
  readonly message: string;
}

/** A non-2xx answer, thrown by request helpers so the reflector can classify it by status. */
export class ApiError extends Error {
  override readonly name = 'ApiError';

  constructor(readonly failure: ApiFailure) {
    super(describeFailure(failure));
  }
}

/** The failure an answer stands for: its status and the Status body's message (or its text). */
export function failureOf(response: KubeResponse): ApiFailure {
  const body = response.body;
  const message =
    typeof body === 'object' && body !== null && typeof (body as { message?: unknown }).message === 'string'
      ? (body as { message: string }).message
      : typeof body === 'string' && body.trim() !== ''
        ? firstLine(body.trim())
        : `HTTP ${response.status} with no message`;
  return { status: response.status, message };
}

/**
 * Reads an HTTP status and message out of a Status object (a watch ERROR event) or an error; a
 * Status carries its HTTP code as `code`.
 */
export function toApiFailure(error: unknown): ApiFailure {
  if (error instanceof ApiError) return error.failure;
  if (typeof error !== 'object' || error === null) return { status: undefined, message: String(error) };
  const record = error as Record<string, unknown>;
  const code = typeof record.code === 'number' && Number.isInteger(record.code) ? record.code : undefined;
  const message =
    typeof record.message === 'string'
      ? firstLine(record.message)
      : error instanceof Error
        ? firstLine(error.message)
        : JSON.stringify(error);
  return { status: code !== undefined && code >= 100 ? code : undefined, message };
}

export function describeFailure(failure: ApiFailure): string {
  return failure.status === undefined ? failure.message : `HTTP ${failure.status}: ${failure.message}`;
}
