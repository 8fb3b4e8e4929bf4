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

/** How long `stop` may take before the process exits anyway (rules stay either way). */
const STOP_DEADLINE_MS = 5_000;

/**
 * `route-controller run`: until SIGTERM or SIGINT. Returns the exit code: 2 for a configuration
 * that cannot work on this node (one plain line per problem on stderr, nothing installed), 1 for a
 * failure at run time (logged).
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
  const signalled = new Promise<NodeJS.Signals>((resolve) => {
    process.on('SIGTERM', () => resolve('SIGTERM'));
    process.on('SIGINT', () => resolve('SIGINT'));
  });
  let agent: Agent;
  try {
    agent = await composeAgent(createAgentContainer(config, { logger }));
    await agent.start();
  } catch (error) {
    if (isConfigurationError(error)) {
      output.err(describeConfigurationError(error));
      return EXIT_CONFIGURATION;
    }
    logFatal(log, error, 'cannot start');
    return EXIT_RUNTIME_FAILURE;
  }
  const signal = await signalled;
  setTimeout(() => {
    log.warn(`stopping took longer than ${STOP_DEADLINE_MS} ms; exiting anyway (rules are kept)`);
    process.exit(0);
  }, STOP_DEADLINE_MS).unref();
  try {
    await agent.stop(signal);
  } catch (error) {
    logFatal(log, error, 'error while stopping');
    return 1;
  }
  return 0;
}

export function logFatal(log: Logger, error: unknown, what: string): void {
  const coded = error instanceof RouteControllerError ? error : undefined;
  log.fatal(
    { err: error, code: coded?.code, hint: coded?.hint },
    `${what}: ${coded?.message ?? (error instanceof Error ? error.message : String(error))}`,
  );
}
