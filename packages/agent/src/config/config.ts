import {
  BLOCK_ACTIONS,
  type BlockAction,
  desiredState,
  ErrorCodes,
  parseCidr,
  parseCidrList,
  RouteControllerError,
} from '@route-controller/core';
import { formatDuration, parseDuration } from './duration.js';
import {
  BACKEND_CHOICES,
  type BackendChoice,
  DEFAULT_DISCOVERY_SOURCES,
  DEFAULT_LISTEN,
  DEFAULT_METRICS_LISTEN,
  DISCOVERY_SOURCE_NAMES,
  type DiscoverySourceName,
  LOG_LEVELS,
  type LogLevel,
  type RawSettings,
  type SettingSpec,
  settingFor,
} from './settings.js';

export interface ListenAddress {
  readonly host: string;
  readonly port: number;
}

/** The agent's validated configuration. */
export interface AgentConfig {
  /** The raw SERVICE_CIDRS value (undefined when unset); parsed by the env source. */
  readonly serviceCidrs: string | undefined;
  readonly backend: BackendChoice;
  readonly action: BlockAction;
  readonly resyncIntervalMs: number;
  readonly logLevel: LogLevel;
  readonly cleanupOnExit: boolean;
  /** Address of /healthz and /readyz; undefined: disabled. */
  readonly listen: ListenAddress | undefined;
  /** Address of /metrics, always apart from health (as kube-proxy's); undefined: disabled. */
  readonly metricsListen: ListenAddress | undefined;
  readonly kubeconfig: string | undefined;
  /** Seconds iptables-restore waits for the xtables lock (`-w`). */
  readonly iptablesLockWaitSeconds: number;
  /** The cluster sources asked when SERVICE_CIDRS is unset, in DISCOVERY_SOURCE_NAMES order. */
  readonly discoverySources: readonly DiscoverySourceName[];
  /** This node's name (NODE_NAME), for the node-args source. */
  readonly nodeName: string | undefined;
  /** The agent's namespace (POD_NAMESPACE), for the dry-run source. */
  readonly podNamespace: string | undefined;
  /** Name the pods behind stale ClusterIP sources (POD_LOOKUP); takes effect with the Kubernetes API. */
  readonly podLookup: boolean;
  /** Kubernetes Events for stale ClusterIPs (STALE_CLUSTERIP_EVENTS); needs the Kubernetes API. */
  readonly staleEvents: boolean;
  /** The agent's own DaemonSet (DAEMONSET_NAME in POD_NAMESPACE), read at SIGTERM: uninstall or not. */
  readonly daemonSet: DaemonSetRef | undefined;
}

export interface DaemonSetRef {
  readonly namespace: string;
  readonly name: string;
}

export const MIN_RESYNC_MS = 100;
export const MAX_RESYNC_MS = 24 * 3_600_000;
export const DEFAULT_LOCK_WAIT_SECONDS = 5;
export const MAX_LOCK_WAIT_SECONDS = 300;

/** Where a raw value came from, so errors can name it the way the user wrote it. */
interface Origin {
  readonly value: string;
  /** The variable or flag, as the user set it. */
  readonly via: string;
}

/**
 * Every bad setting found in one pass: the user fixes them all at once, not one per restart.
 * Each problem keeps its own documented code (ERR_RC_INVALID_CIDR, ERR_RC_CIDR_TOO_BROAD,
 * ERR_RC_INVALID_CONFIG, ...); this error takes the code of the first.
 */
export class InvalidSettingsError extends RouteControllerError {
  constructor(readonly problems: readonly RouteControllerError[]) {
    const [first] = problems;
    super(
      first?.code ?? ErrorCodes.InvalidConfig,
      problems.length === 1 && first ? first.message : `${problems.length} settings are invalid`,
      { hint: first?.hint, details: { problems: problems.map((problem) => problem.toJSON()) } },
    );
  }
}

/**
 * Validates raw settings: flags win over environment variables. Bad values throw an
 * InvalidSettingsError listing each one with the variable (or flag), the value and the fix.
 */
export function loadConfig(env: Readonly<Record<string, string | undefined>>, flags: RawSettings = {}): AgentConfig {
  const problems: RouteControllerError[] = [];
  const origin = (key: keyof RawSettings): Origin | undefined => {
    const spec = settingFor(key);
    const flag = flags[key];
    if (flag !== undefined) return { value: flag, via: spec.flag };
    const fromEnv = env[spec.env];
    if (fromEnv !== undefined && fromEnv !== '') return { value: fromEnv, via: spec.env };
    return undefined;
  };
  /** Runs one setting's check, collecting its problem instead of stopping at it. */
  const checked = <T>(fallback: T, check: () => T): T => {
    try {
      return check();
    } catch (error) {
      if (!(error instanceof RouteControllerError)) throw error;
      problems.push(error);
      return fallback;
    }
  };

  const serviceCidrs = origin('serviceCidrs');
  if (serviceCidrs) problems.push(...cidrProblems(serviceCidrs));
  const podNamespace = checked(undefined, () => kubernetesName('podNamespace', origin('podNamespace'), 63));
  const config: AgentConfig = {
    serviceCidrs: serviceCidrs?.value,
    backend: checked('auto', () => choice('backend', origin('backend'), BACKEND_CHOICES, 'auto')),
    action: checked('drop', () => choice('action', origin('action'), BLOCK_ACTIONS, 'drop')),
    resyncIntervalMs: checked(30_000, () => resync(origin('resyncInterval'))),
    logLevel: checked('info', () => choice('logLevel', origin('logLevel'), LOG_LEVELS, 'info')),
    cleanupOnExit: checked(false, () => bool('cleanupOnExit', origin('cleanupOnExit'), false)),
    listen: checked(undefined, () => listen('listen', origin('listen'), DEFAULT_LISTEN)),
    metricsListen: checked(undefined, () => listen('metricsListen', origin('metricsListen'), DEFAULT_METRICS_LISTEN)),
    kubeconfig: origin('kubeconfig')?.value,
    iptablesLockWaitSeconds: checked(DEFAULT_LOCK_WAIT_SECONDS, () => lockWait(origin('iptablesLockWait'))),
    discoverySources: checked(DEFAULT_DISCOVERY_SOURCES, () => discoverySources(origin('discoverySources'))),
    nodeName: checked(undefined, () => kubernetesName('nodeName', origin('nodeName'), 253)),
    podNamespace,
    podLookup: checked(false, () => bool('podLookup', origin('podLookup'), false)),
    staleEvents: checked(false, () => bool('staleEvents', origin('staleEvents'), false)),
    daemonSet: checked(undefined, () => daemonSet(origin('daemonSetName'), podNamespace)),
  };
  const clash = listenClash(config.listen, config.metricsListen, origin('metricsListen'), origin('listen'));
  if (clash) problems.push(clash);
  const events = origin('staleEvents');
  if (config.staleEvents && serviceCidrs && events) {
    // The agent talks to the Kubernetes API only to discover the Service CIDRs: with SERVICE_CIDRS
    // set it has no connection (and the chart mounts no token), so no Event could be created.
    const spec = settingFor('staleEvents');
    problems.push(
      new RouteControllerError(
        ErrorCodes.InvalidConfig,
        `${nameOf(spec, events)}=${JSON.stringify(events.value)} needs the Kubernetes API, which the agent uses only when ${nameOf(settingFor('serviceCidrs'), serviceCidrs)} is not set`,
        {
          hint: `Unset ${nameOf(settingFor('serviceCidrs'), serviceCidrs)} so the agent discovers the Service CIDRs from the cluster, or set ${nameOf(spec, events)}=false.`,
          details: { variable: spec.env, flag: spec.flag, value: events.value },
        },
      ),
    );
  }
  if (problems.length > 0) throw new InvalidSettingsError(problems);
  return config;
}

/** The name the user wrote: the flag if the value came from it, else the variable. */
function nameOf(spec: SettingSpec, origin: Origin): string {
  return origin.via === spec.flag ? spec.flag : spec.env;
}

function invalid(spec: SettingSpec, origin: Origin, expected: string): RouteControllerError {
  const name = nameOf(spec, origin);
  return new RouteControllerError(ErrorCodes.InvalidConfig, `${name}=${JSON.stringify(origin.value)} is invalid`, {
    hint: `Set ${name} to ${expected}.`,
    details: { variable: spec.env, flag: spec.flag, value: origin.value, expected },
  });
}

/**
 * Each bad SERVICE_CIDRS entry as its own problem, under the CIDR's own code, with the variable and
 * the whole value in front; the hint is the CIDR error's, a whole sentence.
 */
function cidrProblems(origin: Origin): RouteControllerError[] {
  const spec = settingFor('serviceCidrs');
  const name = nameOf(spec, origin);
  const problems: RouteControllerError[] = [];
  for (const entry of origin.value.split(',')) {
    if (entry.trim() === '') continue;
    try {
      parseCidr(entry);
    } catch (error) {
      if (!(error instanceof RouteControllerError)) throw error;
      problems.push(
        new RouteControllerError(error.code, `${name}=${JSON.stringify(origin.value)} is invalid: ${error.message}`, {
          hint: error.hint,
          cause: error,
          details: { variable: spec.env, flag: spec.flag, value: origin.value, entry: entry.trim() },
        }),
      );
    }
  }
  if (problems.length > 0) return problems;
  try {
    // Normalisation cannot fail once each entry parses; the cap on CIDRs per family can.
    desiredState(parseCidrList(origin.value).cidrs);
  } catch (error) {
    if (!(error instanceof RouteControllerError)) throw error;
    // The value itself is left out of the message: it is the long list being refused.
    problems.push(
      new RouteControllerError(error.code, `${name} is invalid: ${error.message}`, {
        hint: error.hint,
        cause: error,
        details: { variable: spec.env, flag: spec.flag, ...error.details },
      }),
    );
  }
  return problems;
}

/** Exactly the documented names (lowercase), nothing looser: what --help lists is what works. */
function choice<T extends string>(
  key: keyof RawSettings,
  origin: Origin | undefined,
  choices: readonly T[],
  fallback: T,
): T {
  if (!origin) return fallback;
  const value = origin.value.trim();
  if ((choices as readonly string[]).includes(value)) return value as T;
  throw invalid(settingFor(key), origin, `one of ${choices.join(', ')}`);
}

function bool(key: keyof RawSettings, origin: Origin | undefined, fallback: boolean): boolean {
  if (!origin) return fallback;
  const value = origin.value.trim();
  if (value === 'true') return true;
  if (value === 'false') return false;
  throw invalid(settingFor(key), origin, 'true or false');
}

function resync(origin: Origin | undefined): number {
  if (!origin) return 30_000;
  const ms = parseDuration(origin.value);
  const expected = `a duration between ${formatDuration(MIN_RESYNC_MS)} and ${formatDuration(MAX_RESYNC_MS)}, such as 30s, 2s or 1m`;
  if (ms === undefined || ms < MIN_RESYNC_MS || ms > MAX_RESYNC_MS)
    throw invalid(settingFor('resyncInterval'), origin, expected);
  return ms;
}

function lockWait(origin: Origin | undefined): number {
  if (!origin) return DEFAULT_LOCK_WAIT_SECONDS;
  const ms = parseDuration(origin.value);
  if (ms === undefined || ms % 1000 !== 0 || ms < 1000 || ms > MAX_LOCK_WAIT_SECONDS * 1000) {
    throw invalid(
      settingFor('iptablesLockWait'),
      origin,
      `whole seconds between 1s and ${formatDuration(MAX_LOCK_WAIT_SECONDS * 1000)}, such as 5s or 30s`,
    );
  }
  return ms / 1000;
}

/**
 * A comma-separated list of source names, each once; the order written does not matter (they are
 * always asked in DISCOVERY_SOURCE_NAMES order). A blank entry is refused, as is an empty list.
 */
function discoverySources(origin: Origin | undefined): readonly DiscoverySourceName[] {
  if (!origin) return DEFAULT_DISCOVERY_SOURCES;
  const entries = origin.value.split(',').map((entry) => entry.trim());
  const known = DISCOVERY_SOURCE_NAMES as readonly string[];
  const ok =
    entries.every((entry) => known.includes(entry)) && new Set(entries).size === entries.length && entries.length > 0;
  if (!ok) {
    throw invalid(
      settingFor('discoverySources'),
      origin,
      `a comma-separated list of ${DISCOVERY_SOURCE_NAMES.join(', ')}, each at most once, such as ${DEFAULT_DISCOVERY_SOURCES.join(',')}`,
    );
  }
  return DISCOVERY_SOURCE_NAMES.filter((name) => entries.includes(name));
}

/** DAEMONSET_NAME, in POD_NAMESPACE: both, or neither. */
function daemonSet(origin: Origin | undefined, namespace: string | undefined): DaemonSetRef | undefined {
  const name = kubernetesName('daemonSetName', origin, 253);
  if (!name || !origin) return undefined;
  if (namespace) return { namespace, name };
  const spec = settingFor('daemonSetName');
  throw new RouteControllerError(
    ErrorCodes.InvalidConfig,
    `${nameOf(spec, origin)}=${JSON.stringify(origin.value)} needs the DaemonSet's namespace, and POD_NAMESPACE is not set`,
    {
      hint: `Set POD_NAMESPACE to the DaemonSet's namespace (the Helm chart sets it from the downward API), or unset ${nameOf(spec, origin)}.`,
      details: { variable: spec.env, flag: spec.flag, value: origin.value },
    },
  );
}

/** A Kubernetes object name as the downward API gives it: lowercase RFC 1123, up to `max` characters. */
function kubernetesName(
  key: 'nodeName' | 'podNamespace' | 'daemonSetName',
  origin: Origin | undefined,
  max: number,
): string | undefined {
  if (!origin) return undefined;
  const value = origin.value.trim();
  const pattern =
    key !== 'podNamespace'
      ? /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/
      : /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
  if (value.length > max || !pattern.test(value)) {
    throw invalid(
      settingFor(key),
      origin,
      key === 'nodeName'
        ? `a node name (lowercase letters, digits, - and ., up to ${max} characters), as the downward API's spec.nodeName gives it`
        : key === 'daemonSetName'
          ? `a DaemonSet name (lowercase letters, digits, - and ., up to ${max} characters), such as route-controller`
          : `a namespace name (lowercase letters, digits and -, up to ${max} characters), as the downward API's metadata.namespace gives it`,
    );
  }
  return value;
}

function listen(
  key: 'listen' | 'metricsListen',
  origin: Origin | undefined,
  fallback: string,
): ListenAddress | undefined {
  const spec = settingFor(key);
  const text = origin?.value.trim() ?? fallback;
  if (text === 'off') return undefined;
  const match = /^(?:\[(?<v6>[0-9a-fA-F:.]+)\]|(?<host>[^:[\]]*)):(?<port>\d{1,5})$/.exec(text);
  const port = Number(match?.groups?.port);
  if (!match || !Number.isInteger(port) || port < 1 || port > 65535) {
    throw invalid(
      spec,
      origin ?? { value: text, via: spec.env },
      `host:port such as ${fallback} ([::1]:<port> for IPv6, :<port> for every address), or off`,
    );
  }
  const host = match.groups?.v6 ?? (match.groups?.host || '0.0.0.0');
  return { host, port };
}

const WILDCARDS = new Set(['0.0.0.0', '::']);

/**
 * The health and metrics addresses must not overlap: the second listener could not bind (found
 * here, before anything is probed, not half-way through a start). Same port, and the same host or a
 * wildcard on either side. The metrics address may be its default (127.0.0.1:9772), which a
 * LISTEN_ADDRESS on that port would take.
 */
function listenClash(
  health: ListenAddress | undefined,
  metrics: ListenAddress | undefined,
  given: Origin | undefined,
  healthGiven: Origin | undefined,
): RouteControllerError | undefined {
  if (!health || !metrics || health.port !== metrics.port) return undefined;
  if (health.host !== metrics.host && !WILDCARDS.has(health.host) && !WILDCARDS.has(metrics.host)) return undefined;
  const show = (address: ListenAddress) =>
    `${address.host.includes(':') ? `[${address.host}]` : address.host}:${address.port}`;
  const other = health.port === 65535 ? health.port - 1 : health.port + 1;
  if (given) {
    const spec = settingFor('metricsListen');
    const name = nameOf(spec, given);
    return new RouteControllerError(
      ErrorCodes.InvalidConfig,
      `${name}=${JSON.stringify(given.value)} takes the port of LISTEN_ADDRESS (${show(health)}): the second listener could not bind it`,
      {
        hint: `Give ${name} a port of its own, such as 127.0.0.1:${other}.`,
        details: { variable: spec.env, flag: spec.flag, value: given.value, listen: show(health) },
      },
    );
  }
  const spec = settingFor('listen');
  const name = healthGiven ? nameOf(spec, healthGiven) : spec.env;
  return new RouteControllerError(
    ErrorCodes.InvalidConfig,
    `${name}=${JSON.stringify(healthGiven?.value ?? show(health))} takes the port of /metrics (METRICS_LISTEN_ADDRESS, by default ${show(metrics)}): the second listener could not bind it`,
    {
      hint: `Give ${name} another port, such as 0.0.0.0:${other === metrics.port ? other + 1 : other}, or set METRICS_LISTEN_ADDRESS to a port of its own.`,
      details: { variable: spec.env, flag: spec.flag, value: healthGiven?.value, metrics: show(metrics) },
    },
  );
}
