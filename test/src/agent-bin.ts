import { createRequire } from 'node:module';
import { dirname, resolve } from 'node:path';
import type { CommandResult } from '@route-controller/core';
import { AgentProcess, type Netns, runCli } from '@route-controller/lab';

/**
 * The agent the tests run, resolved through @route-controller/agent's manifest `bin` field: the one
 * place to change when the bin becomes a bundled file.
 */
export const AGENT_BIN: string = (() => {
  const require = createRequire(import.meta.url);
  const manifestPath = require.resolve('@route-controller/agent/package.json');
  const manifest = require(manifestPath) as { bin: Record<string, string> };
  const bin = manifest.bin['route-controller'];
  if (!bin) throw new Error(`${manifestPath} has no "route-controller" bin`);
  return resolve(dirname(manifestPath), bin);
})();

/** `route-controller run ...args` in `ns` (LISTEN_ADDRESS and METRICS_LISTEN_ADDRESS off unless `env` sets them). */
export function startAgent(
  ns: Netns,
  env: Readonly<Record<string, string>>,
  args: readonly string[] = [],
): AgentProcess {
  return AgentProcess.start(ns, env, args, { bin: AGENT_BIN });
}

/** A one-shot command (probe, plan, status, cleanup) in `ns`; a non-zero exit is data. */
export function agentCli(
  ns: Netns,
  args: readonly string[],
  env: Readonly<Record<string, string>> = {},
): Promise<CommandResult> {
  return runCli(ns, args, env, { bin: AGENT_BIN });
}
