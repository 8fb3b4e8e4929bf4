import { normalizeCidrs, type SourceReading } from '@route-controller/core';
import type { ApiSubject } from '../kube-api/api-loop.js';
import { getObject, listObjects, PeriodicRead } from '../kube-api/periodic-read.js';
import type { KubeObject } from '../kube-api/reflector.js';
import type { KubeTransport } from '../kube-api/transport.js';
import type { Logger } from '../observability/logger.js';
import { SaidOnce } from '../util/said-once.js';
import { type KubernetesSourceStatus, LoopSource } from './api-source.js';
import {
  CONTROL_PLANE_LABEL,
  K3S_DEFAULT_SERVICE_CIDR,
  primaryFamily,
  readNodeArgs,
  splitUsable,
} from './node-args.js';
import type { SourceCommonOptions } from './service-cidr-source.js';

export interface NodeArgsSourceOptions extends SourceCommonOptions {
  /** This node's name (NODE_NAME, from the downward API); undefined outside a pod. */
  readonly nodeName: string | undefined;
}

const SUBJECT: ApiSubject = { noun: 'the Node objects', permission: 'get and list on nodes' };

/** One reading: this node's Node (null: not found, undefined: no NODE_NAME), and the control-plane Nodes if asked. */
interface NodesRead {
  readonly own: KubeObject | null | undefined;
  readonly servers?: readonly KubeObject[];
}

type ServerAnswer =
  | { readonly kind: 'cidrs'; readonly entries: readonly string[]; readonly detail: string }
  | { readonly kind: 'none'; readonly detail: string };

/**
 * k3s and RKE2: the server's --service-cidr, from the node-args annotation k3s writes on its own
 * Node. First this node's own Node, one GET (a server answers for itself; a server that does not
 * name the flag uses the distribution's default); an agent (worker) node carries only its own agent
 * arguments, so then the control-plane Nodes are read: one list by label, from the watch cache.
 * Read again about every 10 minutes, never watched: a label-selected watch of Nodes on every node
 * would be matched by the API server against every Node update, unindexed.
 */
export class NodeArgsSource extends LoopSource {
  readonly name = 'node-args';
  protected readonly subject = SUBJECT;
  protected readonly loop: PeriodicRead<NodesRead>;
  readonly #log: Logger;
  readonly #nodeName: string | undefined;
  readonly #said = new SaidOnce();

  constructor(options: NodeArgsSourceOptions) {
    super(options.firstListWaitMs);
    this.#log = options.logger;
    this.#nodeName = options.nodeName;
    this.loop = this.follow(
      new PeriodicRead({
        subject: SUBJECT,
        resource: options.nodeName
          ? `nodes ${options.nodeName} (and -l ${CONTROL_PLANE_LABEL} if it is no server)`
          : `nodes -l ${CONTROL_PLANE_LABEL}`,
        connect: options.connect,
        read: (transport, signal) => this.#readNodes(transport, signal),
        logger: options.logger,
        ...(options.timings ? { timings: options.timings } : {}),
        ...(options.random ? { random: options.random } : {}),
        ...(options.now ? { now: options.now } : {}),
      }),
    );
  }

  protected override statusExtras(): Partial<KubernetesSourceStatus> {
    const read = this.loop.value();
    return { objects: (read?.own ? 1 : 0) + (read?.servers?.length ?? 0) };
  }

  async #readNodes(transport: KubeTransport, signal: AbortSignal): Promise<NodesRead> {
    const own = this.#nodeName
      ? ((await getObject(
          transport,
          `/api/v1/nodes/${encodeURIComponent(this.#nodeName)}`,
          signal,
        )) as KubeObject | null)
      : undefined;
    if (own && this.#serverAnswer(own).kind === 'cidrs') return { own };
    // Existence, not a value: k3s and RKE2 set "true", kubeadm "".
    const servers = await listObjects(transport, '/api/v1/nodes', { labelSelector: CONTROL_PLANE_LABEL }, signal);
    return { own, servers: servers as KubeObject[] };
  }

  protected answer(): SourceReading {
    const read = this.loop.value() as NodesRead;
    const why: string[] = [];
    if (read.own === undefined) why.push('NODE_NAME is not set (the downward API gives it in a pod)');
    else if (read.own === null) why.push(`node ${this.#nodeName} not found`);
    else {
      const answer = this.#serverAnswer(read.own);
      if (answer.kind === 'cidrs') return this.#cidrs([answer]);
      why.push(answer.detail);
    }
    const nodes = [...(read.servers ?? [])].sort((a, b) =>
      String(a.metadata?.name).localeCompare(String(b.metadata?.name)),
    );
    const answers: Extract<ServerAnswer, { kind: 'cidrs' }>[] = [];
    for (const node of nodes) {
      const answer = this.#serverAnswer(node);
      if (answer.kind === 'cidrs') answers.push(answer);
    }
    if (answers.length === 0) {
      return {
        kind: 'none',
        detail: `${why.join('; ')}; none of the ${nodes.length} control-plane node(s) carries k3s or RKE2 server arguments`,
      };
    }
    const distinct = new Set(answers.map((answer) => answer.entries.join(',')));
    if (distinct.size > 1 && this.#said.said('servers', [...distinct].join('|'))) {
      this.#log.warn(
        { servers: answers.map((answer) => answer.detail), ranges: [...distinct] },
        'server nodes name different service ranges, using all',
      );
    }
    return this.#cidrs(answers, why.join('; '));
  }

  #cidrs(answers: readonly Extract<ServerAnswer, { kind: 'cidrs' }>[], before = ''): SourceReading {
    const { cidrs, notes } = normalizeCidrs(answers.flatMap((answer) => answer.entries));
    const detail = answers.map((answer) => answer.detail).join('; ');
    const reading: SourceReading = { kind: 'cidrs', cidrs, notes, detail: before ? `${detail} (${before})` : detail };
    // A default is a guess worth a line in the log: said once per answer.
    if (this.#said.said('answer', reading.detail)) this.#log.info({ detail: reading.detail }, 'node arguments read');
    return reading;
  }

  /** What one Node's arguments say about the cluster's Service range, if it is a server. */
  #serverAnswer(node: KubeObject): ServerAnswer {
    const name = node.metadata?.name ?? '?';
    const args = readNodeArgs(node);
    if (args.kind === 'absent') {
      return {
        kind: 'none',
        detail: `node ${name} is not a k3s or RKE2 node (no k3s.io/node-args or rke2.io/node-args)`,
      };
    }
    if (args.kind === 'invalid') {
      if (this.#said.said(`invalid:${name}`, args.detail)) {
        this.#log.warn({ node: name, detail: args.detail }, 'node arguments unreadable, ignored');
      }
      return { kind: 'none', detail: `node ${name}: ${args.detail}` };
    }
    if (args.role !== 'server') {
      return {
        kind: 'none',
        detail: `node ${name} is a ${args.distribution} ${args.role || 'node'} node: it carries its own arguments, not the server's`,
      };
    }
    if (args.serviceCidrs.length === 0) {
      const family = primaryFamily(node);
      const cidr = K3S_DEFAULT_SERVICE_CIDR[family];
      return {
        kind: 'cidrs',
        entries: [cidr],
        detail: `${args.distribution} server node ${name} names no --service-cidr: the ${args.distribution} default ${cidr} (its first node IP is ${family === 'ipv4' ? 'IPv4' : 'IPv6'})`,
      };
    }
    const { cidrs, rejected } = splitUsable(args.serviceCidrs);
    for (const entry of rejected) {
      if (this.#said.said(`entry:${name}:${entry}`, 'unusable')) {
        this.#log.warn({ node: name, entry }, 'node service-cidr entry unusable, ignored');
      }
    }
    if (cidrs.length === 0) {
      return { kind: 'none', detail: `${args.distribution} server node ${name}: no usable --service-cidr value` };
    }
    return {
      kind: 'cidrs',
      entries: cidrs,
      detail: `${args.distribution} server node ${name} (${args.annotation}): --service-cidr ${cidrs.join(',')}`,
    };
  }
}
