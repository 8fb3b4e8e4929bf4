import { errorMessage } from '@route-controller/core';
import type { DaemonSetRef } from '../config/config.js';
import { describeFailure, failureOf } from '../kube-api/api-failure.js';
import type { KubeResponse, KubeTransport } from '../kube-api/transport.js';

/*
 * Is the agent stopping because its DaemonSet is being uninstalled, or for any other reason (a
 * rolling update, a drain, a deleted pod)? One GET of the DaemonSet by name tells, and a pure
 * decision turns what it found into "remove the rules" or "keep them".
 */

/** What one GET of the DaemonSet found. */
export type DaemonSetReading =
  | { readonly kind: 'present'; readonly uid: string; readonly deleting: boolean }
  /** The API server's NotFound for this very DaemonSet. */
  | { readonly kind: 'gone' }
  /** 401 or 403: the agent may not read it (any more). */
  | { readonly kind: 'refused'; readonly status: number; readonly message: string }
  /** Anything else: unreachable, a timeout, a 5xx, an answer that is not our DaemonSet. */
  | { readonly kind: 'unknown'; readonly message: string };

export function daemonSetPath(ref: DaemonSetRef): string {
  return `/apis/apps/v1/namespaces/${encodeURIComponent(ref.namespace)}/daemonsets/${encodeURIComponent(ref.name)}`;
}

/** GETs the DaemonSet; never throws. */
export async function readDaemonSet(
  transport: KubeTransport,
  ref: DaemonSetRef,
  signal: AbortSignal,
): Promise<DaemonSetReading> {
  try {
    return readingOf(ref, await transport.request({ method: 'GET', path: daemonSetPath(ref), signal }));
  } catch (error) {
    const message = signal.aborted ? 'no answer before the deadline' : errorMessage(error);
    return { kind: 'unknown', message };
  }
}

/** What an answer says about the DaemonSet; only the server's own NotFound for it counts as gone. */
export function readingOf(ref: DaemonSetRef, response: KubeResponse): DaemonSetReading {
  const body = (typeof response.body === 'object' && response.body !== null ? response.body : {}) as {
    kind?: unknown;
    reason?: unknown;
    metadata?: { name?: unknown; uid?: unknown; deletionTimestamp?: unknown };
    details?: { name?: unknown; kind?: unknown };
  };
  if (response.status === 200) {
    const { metadata } = body;
    if (body.kind !== 'DaemonSet' || metadata?.name !== ref.name || typeof metadata.uid !== 'string') {
      return { kind: 'unknown', message: 'HTTP 200 with something that is not this DaemonSet' };
    }
    return { kind: 'present', uid: metadata.uid, deleting: typeof metadata.deletionTimestamp === 'string' };
  }
  // A 404 for a path the server does not serve at all (a proxy, a wrong URL) says nothing of it.
  if (
    response.status === 404 &&
    body.reason === 'NotFound' &&
    body.details?.name === ref.name &&
    body.details.kind === 'daemonsets'
  ) {
    return { kind: 'gone' };
  }
  const message = describeFailure(failureOf(response));
  if (response.status === 401 || response.status === 403) return { kind: 'refused', status: response.status, message };
  return { kind: 'unknown', message };
}

export interface StopDecision {
  readonly remove: boolean;
  readonly reason: string;
}

/**
 * Remove the rules at stop, or keep them. `seen` is what the agent found while it ran (the
 * DaemonSet present, or not seen yet); `now` what it finds at SIGTERM. Only a DaemonSet the agent
 * has seen can be found going away; whatever cannot be told keeps the rules (fail-static).
 *
 * A refusal now, where reading worked before, counts as going away: `helm uninstall` deletes the
 * DaemonSet and, milliseconds later, the RoleBinding, Role and ServiceAccount that let the agent
 * read it, all before the pods get their SIGTERM. Nothing else withdraws that grant but an
 * operator's hand (or switching routeController.cleanupOnUninstall off, which costs each node a
 * moment without rules while its pod rolls).
 */
export function decideAtStop(seen: DaemonSetReading | undefined, now: DaemonSetReading): StopDecision {
  if (seen?.kind !== 'present') {
    const why = seen ? describeReading(seen) : 'no answer yet';
    return { remove: false, reason: `the DaemonSet was never seen while the agent ran (${why})` };
  }
  switch (now.kind) {
    case 'gone':
      return { remove: true, reason: 'the DaemonSet is gone: it was deleted' };
    case 'present':
      // In place, or replaced by a new one of the same name (uninstall and install again): its pods
      // take the rules over either way.
      if (now.deleting) return { remove: true, reason: 'the DaemonSet is being deleted' };
      return { remove: false, reason: 'the DaemonSet is in place: a rolling update, a drain or a deleted pod' };
    case 'refused':
      return {
        remove: true,
        reason: `the grant to read the DaemonSet was withdrawn since it was seen (${now.message}): an uninstall deletes it right after the DaemonSet`,
      };
    case 'unknown':
      return { remove: false, reason: `cannot tell whether it is being deleted (${now.message})` };
  }
}

function describeReading(reading: DaemonSetReading): string {
  switch (reading.kind) {
    case 'present':
      return 'present';
    case 'gone':
      return 'not found: DAEMONSET_NAME or POD_NAMESPACE may name the wrong one';
    default:
      return reading.message;
  }
}
