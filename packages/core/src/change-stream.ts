import { readFile } from 'node:fs/promises';
import { formatCommand } from './command-runner.js';
import type { ChangeListener, ChangeStreamEnd } from './firewall-backend.js';
import type { StreamExit, StreamRunner } from './stream-runner.js';

/**
 * One run of a kernel change event stream, for backends whose tool prints one event per line
 * (`nft -j monitor ruleset`). What the tool is and which lines are ours is the backend's; this part
 * knows only lines, readiness and how the process ended.
 */

/** What a line is about: ours (reconcile), another tool's (count it), lost events, or noise. */
export type ChangeLineKind = 'ours' | 'other' | 'lost' | 'ignore';

export interface ChangeStreamSpec {
  readonly file: string;
  readonly args: readonly string[];
  /** Sorts a line cheaply (substring checks, no parsing): nearly every line is another tool's change. */
  readonly classify: (line: string) => ChangeLineKind;
  /** A short description of a line about our objects, for logs; default: the line itself. */
  readonly describe?: (line: string) => string;
  /**
   * Resolves once the process is subscribed to the events (true), or gives up (false). Without it,
   * the stream counts as ready once spawned. Nothing is printed at subscription, so a backend that
   * can tell (waitForNetlinkSubscription) should: a change between spawn and subscription is missed.
   */
  readonly subscribed?: (pid: number, signal: AbortSignal) => Promise<boolean>;
}

/** Stderr lines kept to explain why a stream ended. */
const REASON_STDERR_LINES = 3;

/**
 * Starts the stream and reports to `listener` until the process ends or `signal` aborts it; resolves
 * with why it ended. Rejects with the runner's coded error when it cannot be started at all.
 */
export async function runChangeStream(
  runner: StreamRunner,
  spec: ChangeStreamSpec,
  listener: ChangeListener,
  signal: AbortSignal,
): Promise<ChangeStreamEnd> {
  const command = formatCommand(spec);
  const stderr: string[] = [];
  const stream = runner.start({
    file: spec.file,
    args: spec.args,
    signal,
    onStderr: (line) => {
      if (line.trim() === '') return;
      if (stderr.length < REASON_STDERR_LINES) stderr.push(line.trim());
      listener.diagnostic(line);
    },
  });
  let ended = false;
  let ready = false;
  const markReady = () => {
    if (ready || ended || signal.aborted) return;
    ready = true;
    listener.ready();
  };
  void stream.spawned.then((pid) => {
    if (pid === undefined) return;
    // Whether it could tell or gave up, the stream is as ready as it will get: go on either way.
    if (spec.subscribed) void spec.subscribed(pid, signal).then(markReady, markReady);
    else markReady();
  });
  const describe = spec.describe ?? ((line: string) => line);
  try {
    for await (const line of stream) {
      switch (spec.classify(line)) {
        case 'ours':
          listener.change(describe(line));
          break;
        case 'other':
          listener.other();
          break;
        case 'lost':
          listener.lost(line.replace(/^#\s*/, ''));
          break;
        default:
          break;
      }
    }
  } finally {
    ended = true;
  }
  const exit = await stream.exited;
  if (signal.aborted) return { stopped: true, reason: `${command} stopped` };
  const why = stderr.length > 0 ? `: ${stderr.join(' | ')}` : '';
  return { stopped: false, reason: `${command} ${describeExit(exit)}${why}` };
}

function describeExit(exit: StreamExit): string {
  if (exit.signal) return `was killed by ${exit.signal}`;
  return `exited with code ${exit.exitCode ?? 'unknown'}`;
}

export interface NetlinkSubscription {
  /** Netlink protocol number, the `Eth` column (NETLINK_NETFILTER is 12). */
  readonly protocol: number;
  /** Multicast group bits, any of which must be set in the `Groups` column (NFNLGRP_NFTABLES is 0x40). */
  readonly groups: number;
  /** Give up after this long (default 2 s). */
  readonly timeoutMs?: number;
}

/**
 * The first look comes soon (a monitor subscribes within milliseconds of its start), later ones
 * further apart: never a tight poll of /proc.
 */
const FIRST_POLL_MS = 5;
const MAX_POLL_MS = 40;

/**
 * Resolves true once process `pid` holds a netlink socket of `protocol` subscribed to `groups`, read
 * from /proc/<pid>/net/netlink (the sockets of *its* network namespace, so a process started in
 * another namespace is found too). The `Pid` column is the socket's port id, which is the creating
 * process's id unless it was taken; false when not seen within the timeout, or when aborted.
 */
export async function waitForNetlinkSubscription(
  pid: number,
  subscription: NetlinkSubscription,
  signal?: AbortSignal,
): Promise<boolean> {
  const deadline = performance.now() + (subscription.timeoutMs ?? 2_000);
  let wait = FIRST_POLL_MS;
  while (!signal?.aborted && performance.now() < deadline) {
    let table: string;
    try {
      table = await readFile(`/proc/${pid}/net/netlink`, 'latin1');
    } catch {
      return false; // the process is gone
    }
    if (netlinkSubscribed(table, pid, subscription)) return true;
    await new Promise((resolve) => setTimeout(resolve, wait));
    wait = Math.min(MAX_POLL_MS, wait * 2);
  }
  return false;
}

/** True when the /proc/net/netlink `table` has a socket of `pid` with the protocol and a group bit set. */
export function netlinkSubscribed(table: string, pid: number, subscription: NetlinkSubscription): boolean {
  for (const row of table.split('\n').slice(1)) {
    const [, eth, portId, groups] = row.trim().split(/\s+/);
    if (Number(eth) !== subscription.protocol || Number(portId) !== pid) continue;
    if ((Number.parseInt(groups ?? '0', 16) & subscription.groups) !== 0) return true;
  }
  return false;
}
