import { createConnection, createServer, type Server, type Socket } from 'node:net';
import { ErrorCodes, RouteControllerError } from '@route-controller/core';
import type { Logger } from '../observability/logger.js';
import { Backoff } from '../util/backoff.js';
import { sleep } from '../util/sleep.js';

/*
 * One agent per node, and a way for the one-shot commands to find it: a running agent binds an
 * abstract unix socket (Linux's abstract namespace: no file, gone with the process). That namespace
 * belongs to the network namespace, and the agent runs in the node's (host network), so `kubectl
 * exec` into it, a one-shot hostNetwork pod and the node itself all reach the same name, while a
 * pod in its own network namespace never does. The agent answers each connection with its identity
 * as one JSON line, and nothing else.
 */

/** The socket's name in the abstract namespace (`@route-controller` in `ss -xl`). */
export const AGENT_SOCKET_NAME = 'route-controller';

export type AgentState = 'starting' | 'running' | 'stopping';
const STATES: readonly AgentState[] = ['starting', 'running', 'stopping'];

/** What a running agent says about itself. */
export interface AgentIdentity {
  readonly agent: 'route-controller';
  readonly version: string;
  /** In the agent's own PID namespace (a container's). */
  readonly pid: number;
  readonly state: AgentState;
  /** The backend it chose; absent until chosen. */
  readonly backend?: string;
}

/** Who holds the socket in this network namespace. */
export type AgentPresence =
  | { readonly kind: 'none' }
  | { readonly kind: 'agent'; readonly identity: AgentIdentity }
  /** Something holds the name but does not answer as an agent does. */
  | { readonly kind: 'unknown'; readonly detail: string };

/** How long a new agent waits for one that is stopping (a restart): longer than its stop deadline. */
export const HOLDER_STOP_WAIT_MS = 8_000;
const ANSWER_TIMEOUT_MS = 1_000;
/** An identity is a few dozen bytes; more is not an agent talking. */
const MAX_ANSWER_BYTES = 4_096;

/** Whether an agent holds this node and still keeps its rules in step (it repairs what others undo). */
export function agentRuns(presence: AgentPresence): presence is { kind: 'agent'; identity: AgentIdentity } {
  return presence.kind === 'agent' && presence.identity.state !== 'stopping';
}

/** "route-controller 0.1.0 (pid 42, backend nft, running)". */
export function describeAgent(identity: AgentIdentity): string {
  const backend = identity.backend ? `, backend ${identity.backend}` : '';
  return `route-controller ${identity.version} (pid ${identity.pid}${backend}, ${identity.state})`;
}

/**
 * The agent's end: binds the socket and answers each connection with `identity()`. A second agent
 * cannot bind it: bind() waits a little for one that is stopping, and refuses any other with
 * ERR_RC_AGENT_RUNNING.
 */
export class AgentSocket {
  #server: Server | undefined;
  #identity: (() => AgentIdentity) | undefined;

  constructor(
    private readonly name: string,
    private readonly logger: Logger,
    private readonly holderStopWaitMs = HOLDER_STOP_WAIT_MS,
  ) {}

  async bind(identity: () => AgentIdentity, signal?: AbortSignal): Promise<void> {
    this.#identity = identity;
    const backoff = new Backoff({ initialMs: 100, maxMs: 1_000, jitter: 0.2 });
    const until = performance.now() + this.holderStopWaitMs;
    let waited = false;
    for (;;) {
      const server = await this.#listen();
      if (server) {
        this.#server = server;
        return;
      }
      const holder = await findAgent(this.name);
      const stopping = holder.kind === 'agent' && holder.identity.state === 'stopping';
      // An agent that runs is refused at once. One that is stopping is waited for, and so, for a
      // while, is a holder that does not answer as an agent: it may be one going away mid-answer.
      if (agentRuns(holder) || performance.now() > until || signal?.aborted) throw agentRunning(holder, this.name);
      if (stopping && !waited) {
        waited = true;
        this.logger.info({ holder: holder.identity }, 'waiting for the stopping agent to exit');
      }
      await sleep(backoff.next(), signal);
    }
  }

  async close(): Promise<void> {
    const server = this.#server;
    this.#server = undefined;
    if (server) await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  /** The bound server, or undefined when another process holds the name. */
  #listen(): Promise<Server | undefined> {
    const server = createServer((socket) => this.#answer(socket));
    // A handful of connections at a time: the identity is all there is to get.
    server.maxConnections = 16;
    return new Promise((resolve, reject) => {
      server.once('error', (error: NodeJS.ErrnoException) => {
        if (error.code === 'EADDRINUSE') resolve(undefined);
        else reject(error);
      });
      server.listen({ path: `\0${this.name}` }, () => {
        // Never what keeps a process alive: the agent lives by its loops and its signal handlers.
        server.unref();
        resolve(server);
      });
    });
  }

  #answer(socket: Socket): void {
    socket.on('error', () => socket.destroy());
    socket.setTimeout(ANSWER_TIMEOUT_MS, () => socket.destroy());
    socket.end(`${JSON.stringify(this.#identity?.())}\n`);
  }
}

/** Asks the socket in this network namespace who holds it. */
export function findAgent(name = AGENT_SOCKET_NAME, timeoutMs = ANSWER_TIMEOUT_MS): Promise<AgentPresence> {
  return new Promise((resolve) => {
    let text = '';
    let settled = false;
    const settle = (presence: AgentPresence) => {
      if (settled) return;
      settled = true;
      socket.destroy();
      resolve(presence);
    };
    const socket = createConnection({ path: `\0${name}` });
    socket.setEncoding('utf8');
    socket.setTimeout(timeoutMs, () => settle({ kind: 'unknown', detail: `no answer within ${timeoutMs} ms` }));
    socket.on('error', (error: NodeJS.ErrnoException) => {
      // Nobody listens on the name: no agent in this network namespace.
      if (error.code === 'ECONNREFUSED' || error.code === 'ENOENT') settle({ kind: 'none' });
      else settle({ kind: 'unknown', detail: error.code ?? error.message });
    });
    socket.on('data', (chunk: string) => {
      text += chunk;
      if (text.length > MAX_ANSWER_BYTES) settle({ kind: 'unknown', detail: 'an answer too long for an identity' });
    });
    socket.on('end', () => {
      const identity = parseIdentity(text);
      settle(identity ? { kind: 'agent', identity } : { kind: 'unknown', detail: 'an answer that is no identity' });
    });
  });
}

function parseIdentity(text: string): AgentIdentity | undefined {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return undefined;
  }
  const record = value as Partial<Record<keyof AgentIdentity, unknown>> | null;
  if (typeof record !== 'object' || record === null || record.agent !== 'route-controller') return undefined;
  const { version, pid, state, backend } = record;
  if (typeof version !== 'string' || typeof pid !== 'number' || !STATES.includes(state as AgentState)) return undefined;
  return {
    agent: 'route-controller',
    version,
    pid,
    state: state as AgentState,
    ...(typeof backend === 'string' ? { backend } : {}),
  };
}

/** Why `run` refuses to start beside another holder of the socket. */
function agentRunning(holder: AgentPresence, name: string): RouteControllerError {
  const who =
    holder.kind === 'agent'
      ? `another agent, ${describeAgent(holder.identity)}, runs on this node`
      : `another process holds the agent socket @${name} on this node (${holder.kind === 'unknown' ? holder.detail : 'it went away while asked'})`;
  return new RouteControllerError(ErrorCodes.AgentRunning, `${who}: one agent per node`, {
    hint: 'Stop the other agent first (a second release of the chart on the same nodes?); a restart of the same pod waits for the old one by itself.',
    details: { socket: `@${name}`, ...(holder.kind === 'agent' ? { holder: holder.identity } : {}) },
  });
}
