import type { IptablesFlavourDetection } from '@route-controller/backend-iptables';
import { type Availability, RouteControllerError } from '@route-controller/core';
import type { AgentConfig } from '../config/config.js';
import { BACKEND_NAMES, type BackendName } from '../config/settings.js';
import { inject, injectable } from '../di.js';
import { TOKENS } from '../tokens.js';
import { type BackendSet, backendOf } from './backend-set.js';
import { type BackendDecision, decideBackend, type ProbeFindings } from './decide-backend.js';

/** Which iptables flavour the node uses (detectIptablesFlavour bound to the command runner). */
export type FlavourDetector = () => Promise<IptablesFlavourDetection>;

export interface Selection extends BackendDecision, ProbeFindings {}

export interface ProbeReport {
  readonly availability: Partial<Record<BackendName, Availability>>;
  readonly detection: IptablesFlavourDetection;
  readonly decision?: BackendDecision;
  readonly error?: RouteControllerError;
}

/** Runs the probes the selection policy needs, and no more, then decides. */
@injectable()
export class BackendSelector {
  readonly #cache = new Map<BackendName, Promise<Availability>>();
  #detection: Promise<IptablesFlavourDetection> | undefined;

  constructor(
    @inject(TOKENS.Config) private readonly config: AgentConfig,
    @inject(TOKENS.Backends) private readonly backends: BackendSet,
    @inject(TOKENS.FlavourDetector) private readonly detect: FlavourDetector,
  ) {}

  /** Probes lazily: with nft available, `auto` needs nothing else. */
  async select(): Promise<Selection> {
    const requested = this.config.backend;
    const findings: { availability: Partial<Record<BackendName, Availability>>; detection?: IptablesFlavourDetection } =
      {
        availability: {},
      };
    if (requested !== 'auto') {
      // A forced backend needs only its own probe; the flavour check is a warning, made after start.
      findings.availability[requested] = await this.probe(requested);
    } else {
      findings.availability.nft = await this.probe('nft');
      if (!findings.availability.nft.available) {
        findings.detection = await this.detection();
        findings.availability['iptables-nft'] = await this.probe('iptables-nft');
        findings.availability['iptables-legacy'] = await this.probe('iptables-legacy');
      }
    }
    return { ...decideBackend(requested, findings), ...findings };
  }

  /** Every probe and the flavour detection, for `route-controller probe`; never throws for "none works". */
  async report(): Promise<ProbeReport> {
    const availability: Partial<Record<BackendName, Availability>> = {};
    for (const name of BACKEND_NAMES) availability[name] = await this.probe(name);
    const detection = await this.detection();
    try {
      return { availability, detection, decision: decideBackend(this.config.backend, { availability, detection }) };
    } catch (error) {
      if (!(error instanceof RouteControllerError)) throw error;
      return { availability, detection, error };
    }
  }

  /**
   * For a forced iptables backend: warnings when the node's kube-proxy uses the other flavour.
   * Run after the rules are in place, as it reads every table of both flavours.
   */
  async flavourWarnings(selection: Selection): Promise<readonly string[]> {
    if (this.config.backend === 'auto' || this.config.backend === 'nft') return [];
    const decision = decideBackend(this.config.backend, { ...selection, detection: await this.detection() });
    return decision.warnings.filter((warning) => !selection.warnings.includes(warning));
  }

  probe(name: BackendName): Promise<Availability> {
    let probe = this.#cache.get(name);
    if (!probe) {
      probe = backendOf(this.backends, name).probe();
      this.#cache.set(name, probe);
    }
    return probe;
  }

  detection(): Promise<IptablesFlavourDetection> {
    this.#detection ??= this.detect();
    return this.#detection;
  }
}
