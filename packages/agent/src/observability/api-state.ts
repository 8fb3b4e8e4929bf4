/**
 * The connection states of a Kubernetes source, as status and metrics show them. Kept apart from
 * the sources so metrics can list them without loading any Kubernetes code.
 */
export const API_CONNECTION_STATES = [
  'not-configured',
  'connecting',
  'synced',
  'unreachable',
  'not-found',
  'forbidden',
  /** An unexpected error in the agent's own watch code: shown, logged, and the watch restarted. */
  'error',
  'stopped',
] as const;

export type ApiConnectionState = (typeof API_CONNECTION_STATES)[number];
