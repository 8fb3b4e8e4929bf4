import { RouteControllerError } from '@route-controller/core';
import type { Agent } from '../agent.js';
import type { AgentConfig } from '../config/config.js';
import { composeAgent, createAgentContainer } from '../container.js';
import { createLogger, type Logger } from '../observability/logger.js';
import {
  describeConfigurationError,
  EXIT_CONFIGURATION,
  EXIT_RUNTIME_FAILURE,
  isConfigurationError,
  type Output,
  processOutput,
} from './output.js';

/** How long `stop` may take (the removal of the rules included) before the process exits anyway, with 1. */
export const STOP_DEADLINE_MS = 5_000;
/** After the deadline has aborted what was running, how long the stop has to return. */
const AFTER_DEADLINE_MS = 1_000;
/** How long a process that is done may take to exit by itself before it is ended. */
const EXIT_GRACE_MS = 1_000;

/**
 * `route-controller run`: until SIGTERM or SIGINT. Returns the exit code: 2 for a configuration
 * that cannot work on this node (one plain line per problem on stderr, nothing installed), 1 for a
 * failure at run time (logged), a failed start included: it has closed what it opened first.
 */
export async function runAgent(
  config: AgentConfig,
  logger: Logger = createLogger(config.logLevel),
  output: Output = processOutput,
): Promise<number> {
  const log = logger.child({ component: 'agent' });
  // Listened for from the start: a SIGTERM that arrives while the agent starts (the rules being
  // applied, the change event monitor starting) stops it in order once started, never by default
  // disposition half-way. `on`, not `once`: execa's exit handler (signal-exit) re-raises a signal
  // that no other listener is left to handle, which would kill the process before it has stopped.
  let onSignal: (signal: NodeJS.Signals) => void = () => {};
  const signalled = new Promise<NodeJS.Signals>((resolve) => {
    onSignal = resolve;
  });
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
  const done = (code: number) => {
    process.off('SIGTERM', onSignal);
    process.off('SIGINT', onSignal);
    exitSoon(code, log);
    return code;
  };
  let agent: Agent;
  try {
    agent = await composeAgent(createAgentContainer(config, { logger }));
    await agent.start();
  } catch (error) {
    if (isConfigurationError(error)) {
      output.err(describeConfigurationError(error));
      return done(EXIT_CONFIGURATION);
    }
    logFatal(log, error, 'cannot start');
    return done(EXIT_RUNTIME_FAILURE);
  }
  return done(await stopWithin(agent, await signalled, log));
}

/**
 * The agent has stopped (or never started) and closed what it opened, so the process ends by
 * itself. Should anything still hold it open, it is ended after EXIT_GRACE_MS all the same, saying
 * what held it: a failed agent that stays alive would answer no probe and ignore SIGTERM.
 */
function exitSoon(code: number, log: Logger): void {
  setTimeout(() => {
    log.warn({ resources: process.getActiveResourcesInfo(), exitCode: code }, 'still open at exit; exiting anyway');
    process.exit(code);
  }, EXIT_GRACE_MS).unref();
}

export interface StopOptions {
  /** Ends the process when even the deadline's abort does not end the stop. */
  readonly exit?: (code: number) => void;
}

/**
 * Stops the agent within STOP_DEADLINE_MS: at the deadline whatever still runs (the removal of the
 * rules waiting for the xtables lock) is aborted, and the exit code is 1, for a stop that did not
 * finish. A stop that even then does not return ends the process.
 */
export async function stopWithin(
  agent: Pick<Agent, 'stop'>,
  signal: string,
  log: Logger,
  options: StopOptions = {},
): Promise<number> {
  const { exit = (code: number) => process.exit(code) } = options;
  const deadline = new AbortController();
  let last: NodeJS.Timeout | undefined;
  const timer = setTimeout(() => {
    log.error({ deadlineMs: STOP_DEADLINE_MS }, 'stop deadline passed');
    deadline.abort();
    last = setTimeout(() => exit(EXIT_RUNTIME_FAILURE), AFTER_DEADLINE_MS);
    last.unref();
  }, STOP_DEADLINE_MS);
  timer.unref();
  try {
    await agent.stop(signal, deadline.signal);
  } catch (error) {
    logFatal(log, error, 'error while stopping');
    return EXIT_RUNTIME_FAILURE;
  } finally {
    clearTimeout(timer);
    clearTimeout(last);
  }
  return deadline.signal.aborted ? EXIT_RUNTIME_FAILURE : 0;
}

/** A fatal error under a constant message (`what`), with its code, hint and message in fields. */
function logFatal(log: Logger, error: unknown, what: string): void {
  const coded = error instanceof RouteControllerError ? error : undefined;
  log.fatal({ err: error, code: coded?.code, hint: coded?.hint }, what);
}
