import {
  BLOCK_ACTIONS,
  type BlockAction,
  EnvServiceCidrSource,
  ErrorCodes,
  RouteControllerError,
} from '@route-controller/core';
import { formatDuration, parseDuration } from './duration.js';
import {
  BACKEND_CHOICES,
  type BackendChoice,
  DEFAULT_LISTEN,
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
  /** Undefined when the endpoint is disabled. */
  readonly listen: ListenAddress | undefined;
  readonly kubeconfig: string | undefined;
  /** Seconds iptables-restore waits for the xtables lock (`-w`). */
  readonly iptablesLockWaitSeconds: number;
}

export const MIN_RESYNC_MS = 100;
export const MAX_RESYNC_MS = 24 * 3_600_000;
export const DEFAULT_LOCK_WAIT_SECONDS = 5;
export const MAX_LOCK_WAIT_SECONDS = 300;

/** Where a raw value came from, so errors can name it the way the user wrote it. */
type Origin = { readonly value: string; readonly via: string };

/**
 * Validates raw settings: flags win over environment variables. Any bad value throws
 * ERR_RC_INVALID_CONFIG naming the variable (or flag), the value and the valid choices.
 */
export function loadConfig(env: Readonly<Record<string, string | undefined>>, flags: RawSettings = {}): AgentConfig {
  const origin = (key: keyof RawSettings): Origin | undefined => {
    const spec = settingFor(key);
    const flag = flags[key];
    if (flag !== undefined) return { value: flag, via: spec.flag };
    const fromEnv = env[spec.env];
    if (fromEnv !== undefined && fromEnv !== '') return { value: fromEnv, via: spec.env };
    return undefined;
  };

  const serviceCidrs = origin('serviceCidrs');
  if (serviceCidrs) {
    try {
      new EnvServiceCidrSource(serviceCidrs.value);
    } catch (error) {
      const cause = error as RouteControllerError;
      throw invalid(settingFor('serviceCidrs'), serviceCidrs, cause.hint ?? 'comma-separated CIDRs', {
        cause,
        reason: cause.message,
      });
    }
  }

  return {
    serviceCidrs: serviceCidrs?.value,
    backend: choice('backend', origin('backend'), BACKEND_CHOICES, 'auto'),
    action: choice('action', origin('action'), BLOCK_ACTIONS, 'drop'),
    resyncIntervalMs: resync(origin('resyncInterval')),
    logLevel: choice('logLevel', origin('logLevel'), LOG_LEVELS, 'info'),
    cleanupOnExit: bool('cleanupOnExit', origin('cleanupOnExit'), false),
    listen: listen(origin('listen')),
    kubeconfig: origin('kubeconfig')?.value,
    iptablesLockWaitSeconds: lockWait(origin('iptablesLockWait')),
  };
}

function invalid(
  spec: SettingSpec,
  origin: Origin,
  expected: string,
  extra: { cause?: unknown; reason?: string } = {},
): RouteControllerError {
  const name = origin.via === spec.flag ? spec.flag : spec.env;
  const reason = extra.reason ? `: ${extra.reason}` : '';
  return new RouteControllerError(
    ErrorCodes.InvalidConfig,
    `${name}=${JSON.stringify(origin.value)} is invalid${reason}`,
    {
      hint: `Set ${name} to ${expected}.`,
      cause: extra.cause,
      details: { variable: spec.env, flag: spec.flag, value: origin.value, expected },
    },
  );
}

function choice<T extends string>(
  key: keyof RawSettings,
  origin: Origin | undefined,
  choices: readonly T[],
  fallback: T,
): T {
  if (!origin) return fallback;
  const value = origin.value.trim().toLowerCase();
  if ((choices as readonly string[]).includes(value)) return value as T;
  throw invalid(settingFor(key), origin, `one of ${choices.join(', ')}`);
}

function bool(key: keyof RawSettings, origin: Origin | undefined, fallback: boolean): boolean {
  if (!origin) return fallback;
  const value = origin.value.trim().toLowerCase();
  if (['true', '1', 'yes', 'on'].includes(value)) return true;
  if (['false', '0', 'no', 'off'].includes(value)) return false;
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

function listen(origin: Origin | undefined): ListenAddress | undefined {
  const text = origin?.value.trim() ?? DEFAULT_LISTEN;
  if (['off', 'none', 'false'].includes(text.toLowerCase())) return undefined;
  const match = /^(?:\[(?<v6>[0-9a-fA-F:.]+)\]|(?<host>[^:[\]]*)):(?<port>\d{1,5})$/.exec(text);
  const port = Number(match?.groups?.port);
  if (!match || !Number.isInteger(port) || port < 1 || port > 65535) {
    throw invalid(
      settingFor('listen'),
      origin ?? { value: text, via: 'LISTEN_ADDRESS' },
      'host:port such as 0.0.0.0:9771, [::]:9771 or :9771, or off',
    );
  }
  const host = match.groups?.v6 ?? (match.groups?.host || '0.0.0.0');
  return { host, port };
}
