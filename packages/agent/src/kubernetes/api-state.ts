/**
 * The ServiceCIDR watch's connection states, as status and metrics show them. Kept apart from the
 * source so metrics can list them without loading the Kubernetes client.
 */
export const API_CONNECTION_STATES = [
  'not-configured',
  'connecting',
  'synced',
  'unreachable',
  'not-found',
  'forbidden',
  'stopped',
] as const;

export type ApiConnectionState = (typeof API_CONNECTION_STATES)[number];
