/** What went wrong talking to the API server, reduced to what the source must decide on. */
export interface ApiFailure {
  /** HTTP status, or undefined when the server could not be reached at all. */
  readonly status: number | undefined;
  /** The server's message (from its Status body) or the network error. */
  readonly message: string;
}

/**
 * Reads an HTTP status and message out of whatever client-node threw: an ApiException (`code`,
 * `body`), a watch error (`statusCode`), a Status object from a watch ERROR event, or a network error.
 */
export function toApiFailure(error: unknown): ApiFailure {
  if (typeof error !== 'object' || error === null) return { status: undefined, message: String(error) };
  const record = error as Record<string, unknown>;
  const status = numberOf(record.code) ?? numberOf(record.statusCode);
  const body = typeof record.body === 'string' ? parseJson(record.body) : record.body;
  const bodyMessage =
    typeof body === 'object' && body !== null && typeof (body as Record<string, unknown>).message === 'string'
      ? ((body as Record<string, unknown>).message as string)
      : undefined;
  const message =
    bodyMessage ??
    (record.kind === 'Status' && typeof record.message === 'string' ? record.message : undefined) ??
    (error instanceof Error ? firstLine(error.message) : JSON.stringify(error));
  // A Status object from a watch ERROR event carries its HTTP code as `code`.
  return { status: status !== undefined && status >= 100 ? status : undefined, message };
}

function numberOf(value: unknown): number | undefined {
  return typeof value === 'number' && Number.isInteger(value) ? value : undefined;
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

function firstLine(text: string): string {
  return text.split('\n')[0] ?? text;
}
