import { normalizeCidrs, type ServiceCidrSource, type SourceReading } from '@route-controller/core';
import type { KubeObject } from '../kube-api/reflector.js';
import type { Logger } from '../observability/logger.js';
import {
  CONTROL_PLANE_LABEL,
  K3S_DEFAULT_SERVICE_CIDR,
  primaryFamily,
  readNodeArgs,
  splitUsable,
} from './node-args.js';
import { type SourceCommonOptions, warnOnce } from './service-cidr-source.js';
import {
  type KubernetesSource,
  type KubernetesSourceStatus,
  ReadingListeners,
  Reflector,
  staleNote,
  unsyncedReading,
  withDetail,
} from './watched-source.js';

export interface NodeArgsSourceOptions extends SourceCommonOptions {
  /** This node's name (NODE_NAME, from the downward API); undefined outside a pod. */
  readonly nodeName: string | undefined;
}

const PERMISSION = 'get, list and watch on nodes';
const HINT =
  'Check that the API server is reachable from the node, or set SERVICE_CIDRS (Helm: routeController.serviceCIDRs).';

type ServerAnswer =
  | { readonly kind: 'cidrs'; readonly entries: readonly string[]; readonly detail: string }
  | { readonly kind: 'none'; readonly detail: string };

/**
 * k3s and RKE2: the server's --service-cidr, from the node-args annotation k3s writes on its own
 * Node. First this node's own Node (a server answers for itself; a server that does not name the
 * flag uses the distribution's default); an agent (worker) node carries only its own agent
 * arguments, so then the control-plane nodes are read. Both followed live, by watches on one
 * Node (field selector) and on the nodes with the control-plane label.
 */
export class NodeArgsSource implements ServiceCidrSource, KubernetesSource {
  readonly name = 'node-args';
  readonly #own: Reflector | undefined;
  readonly #servers: Reflector;
  readonly #listeners = new ReadingListeners();
  readonly #firstListWaitMs: number;
  readonly #log: Logger;
  readonly #nodeName: string | undefined;
  #announced = '';

  constructor(options: NodeArgsSourceOptions) {
    this.#log = options.logger;
    this.#nodeName = options.nodeName;
    this.#firstListWaitMs = options.firstListWaitMs ?? 2_000;
    const common = {
      connect: options.connect,
      logger: options.logger,
      ...(options.timings ? { timings: options.timings } : {}),
      ...(options.random ? { random: options.random } : {}),
    };
    if (options.nodeName) {
      this.#own = new Reflector({
        ...common,
        subject: { noun: `this node's Node object (${options.nodeName})`, permission: PERMISSION },
        resolve: async () => ({
          kind: 'served',
          target: {
            path: '/api/v1/nodes',
            query: { fieldSelector: `metadata.name=${options.nodeName}` },
            resource: `nodes ${options.nodeName}`,
          },
        }),
      });
      this.#own.subscribe(() => this.#changed());
    }
    this.#servers = new Reflector({
      ...common,
      subject: { noun: 'the control-plane Node objects', permission: PERMISSION },
      resolve: async () => ({
        kind: 'served',
        target: {
          path: '/api/v1/nodes',
          // Existence, not a value: k3s and RKE2 set "true", kubeadm "".
          query: { labelSelector: CONTROL_PLANE_LABEL },
          resource: `nodes -l ${CONTROL_PLANE_LABEL}`,
        },
      }),
    });
    this.#servers.subscribe(() => this.#changed());
  }

  statuses(): readonly KubernetesSourceStatus[] {
    const statuses: KubernetesSourceStatus[] = [];
    if (this.#own) statuses.push({ source: this.name, ...this.#own.status() });
    if (this.#servers.started) statuses.push({ source: `${this.name}-servers`, ...this.#servers.status() });
    return statuses;
  }

  async read(): Promise<SourceReading> {
    if (this.#own) await this.#own.start(this.#firstListWaitMs);
    let reading = this.#reading();
    if (this.#servers.started && !this.#servers.status().synced) {
      // The own node did not answer: give the control-plane list the same first wait.
      await this.#servers.start(this.#firstListWaitMs);
      reading = this.#reading();
    }
    this.#announce(reading);
    return reading;
  }

  subscribe(listener: () => void): () => void {
    return this.#listeners.subscribe(listener);
  }

  async close(): Promise<void> {
    await Promise.all([this.#own?.stop(), this.#servers.stop()]);
  }

  #changed(): void {
    const reading = this.#reading();
    this.#announce(reading);
    this.#listeners.update(reading);
  }

  /** Says once per answer where it comes from: a default is a guess worth a line in the log. */
  #announce(reading: SourceReading): void {
    if (reading.kind !== 'cidrs' || reading.detail === this.#announced) return;
    this.#announced = reading.detail;
    this.#log.info({ source: this.name }, `node arguments: ${reading.detail}`);
  }

  #reading(): SourceReading {
    const why: string[] = [];
    const own = this.#own;
    if (!own) {
      why.push('NODE_NAME is not set (the downward API gives it in a pod)');
    } else if (!own.status().synced) {
      const reading = unsyncedReading(own, { noun: `node ${this.#nodeName}`, permission: PERMISSION }, HINT);
      if (reading.kind === 'unavailable') return reading;
      why.push(`node ${this.#nodeName}: ${reading.detail}`);
    } else {
      const [node] = own.objects().values();
      if (!node) {
        why.push(`node ${this.#nodeName} not found`);
      } else {
        const answer = this.#serverAnswer(node);
        if (answer.kind === 'cidrs') return withDetail(this.#cidrs([answer]), staleNote(own));
        why.push(answer.detail);
      }
    }

    // This node is no server (or unknown): the servers' own Nodes carry the cluster's arguments.
    const servers = this.#servers;
    if (!servers.started) void servers.start();
    if (!servers.status().synced) {
      const reading = unsyncedReading(servers, { noun: 'the control-plane nodes', permission: PERMISSION }, HINT);
      if (reading.kind === 'unavailable') return reading;
      return { kind: 'none', detail: `${why.join('; ')}; control-plane nodes: ${reading.detail}` };
    }
    const answers: Extract<ServerAnswer, { kind: 'cidrs' }>[] = [];
    const nodes = [...servers.objects().values()].sort((a, b) =>
      String(a.metadata?.name).localeCompare(String(b.metadata?.name)),
    );
    for (const node of nodes) {
      const answer = this.#serverAnswer(node);
      if (answer.kind === 'cidrs') answers.push(answer);
    }
    if (answers.length === 0) {
      return withDetail(
        {
          kind: 'none',
          detail: `${why.join('; ')}; none of the ${nodes.length} control-plane node(s) carries k3s or RKE2 server arguments`,
        },
        staleNote(servers),
      );
    }
    const distinct = new Set(answers.map((answer) => answer.entries.join(',')));
    if (distinct.size > 1) {
      warnOnce(this.#log, [...distinct].join('|'), () =>
        this.#log.warn(
          { servers: answers.map((answer) => answer.detail) },
          `the server nodes name different Service ranges (${[...distinct].join(' vs ')}); using all of them`,
        ),
      );
    }
    return withDetail(this.#cidrs(answers, why.join('; ')), staleNote(servers));
  }

  #cidrs(answers: readonly Extract<ServerAnswer, { kind: 'cidrs' }>[], before = ''): SourceReading {
    const { cidrs, notes } = normalizeCidrs(answers.flatMap((answer) => answer.entries));
    const detail = answers.map((answer) => answer.detail).join('; ');
    return { kind: 'cidrs', cidrs, notes, detail: before ? `${detail} (${before})` : detail };
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
      warnOnce(this.#log, `${name}:${args.detail}`, () =>
        this.#log.warn({ node: name }, `node ${name}: ${args.detail}; its arguments are ignored`),
      );
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
      warnOnce(this.#log, `${name}:${entry}`, () =>
        this.#log.warn(
          { node: name, entry },
          `node ${name}: --service-cidr value route-controller cannot use: "${entry}"; ignored`,
        ),
      );
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
