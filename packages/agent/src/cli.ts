import { ErrorCodes, RouteControllerError } from '@route-controller/core';
import { Command, CommanderError, Option } from 'commander';
import {
  describeError,
  EXIT_CONFIGURATION,
  EXIT_RUNTIME_FAILURE,
  isConfigurationError,
  type Output,
  processOutput,
} from './commands/output.js';
import { type AgentConfig, loadConfig } from './config/config.js';
import { type RawSettings, SETTINGS, type SettingSpec } from './config/settings.js';
import type { Toolbox } from './container.js';
import { VERSION } from './version.js';

/*
 * The command line. Each command's code is imported when the command runs, so `--version`,
 * `--help` and a usage error load only this file and the settings table, and `probe` never loads
 * the reconciler or the Kubernetes client.
 */

const DESCRIPTION =
  "Drops forwarded packets to Kubernetes Service CIDRs on a node, so a packet to a stale ClusterIP cannot loop between the node and a workstation that routes the Service range into the cluster. Live Services are DNAT'ed before the forward hook and are not affected.";

function settingOption(spec: SettingSpec): Option {
  const defaults = spec.defaultText ? `, default: ${spec.defaultText}` : '';
  return new Option(`${spec.flag} <${spec.argName}>`, `${spec.description} (env: ${spec.env}${defaults})`);
}

function withSettings(command: Command, keys: readonly (keyof RawSettings)[]): Command {
  for (const spec of SETTINGS.filter((s) => keys.includes(s.key))) command.addOption(settingOption(spec));
  return command;
}

const ALL: readonly (keyof RawSettings)[] = SETTINGS.map((s) => s.key);
/** What discovery needs: a one-shot command must find the Service CIDRs where the agent would. */
const SOURCES: readonly (keyof RawSettings)[] = [
  'serviceCidrs',
  'kubeconfig',
  'discoverySources',
  'nodeName',
  'podNamespace',
];
const DISCOVERY: readonly (keyof RawSettings)[] = [...SOURCES, 'backend', 'action', 'logLevel'];
const STATUS: readonly (keyof RawSettings)[] = [...SOURCES, 'podLookup', 'logLevel'];
const PROBE: readonly (keyof RawSettings)[] = [...SOURCES, 'backend', 'logLevel'];

/** commander's usage errors, as one coded line (the exit code is 2). */
export function usageError(error: CommanderError, command: string): RouteControllerError {
  const message = error.message.replace(/^error:\s*/, '').replace(/\n[\s\S]*$/, '');
  return new RouteControllerError(ErrorCodes.Usage, message, {
    hint: `Run ${command} --help for the usage.`,
    details: { commanderCode: error.code },
  });
}

/** Builds the CLI; `exit` receives each command's exit code. */
export function buildProgram(
  env: Readonly<Record<string, string | undefined>>,
  output: Output,
  exit: (code: number) => void,
): Command {
  const program = new Command('route-controller')
    .description(DESCRIPTION)
    .version(VERSION, '-v, --version', 'print the version')
    // Usage errors are printed by main() as one coded line; help and version go to stdout.
    .configureOutput({ writeOut: (s) => output.out(s), writeErr: (s) => output.err(s), outputError: () => {} })
    .addHelpText(
      'after',
      "\nEvery setting is also an environment variable (named in each command's --help); flags win.\nExit codes: 0 success, 1 a failure at run time, 2 a bad setting or command line (nothing is changed).",
    );

  /** Validates settings before any command touches the node: bad input exits 2, changing nothing. */
  const config = (flags: RawSettings): AgentConfig | undefined => {
    try {
      return loadConfig(env, flags);
    } catch (error) {
      output.err(describeError(error));
      exit(EXIT_CONFIGURATION);
      return undefined;
    }
  };
  const toolbox = async (cfg: AgentConfig): Promise<Toolbox> => {
    const [{ composeToolbox, createAgentContainer }, { createLogger }, { checkOneShotConfig }] = await Promise.all([
      import('./container.js'),
      import('./observability/logger.js'),
      import('./startup/preflight.js'),
    ]);
    await checkOneShotConfig(cfg);
    // One-shot commands log to stderr so stdout stays clean for --json.
    const logger = createLogger(cfg.logLevel === 'info' ? 'warn' : cfg.logLevel, 2);
    return composeToolbox(createAgentContainer(cfg, { logger, oneShot: true }));
  };
  /** Runs a command: a configuration error exits 2 with one line per problem, any other failure 1. */
  const guard = async (work: () => Promise<number>) => {
    try {
      exit(await work());
    } catch (error) {
      output.err(describeError(error));
      exit(isConfigurationError(error) ? EXIT_CONFIGURATION : EXIT_RUNTIME_FAILURE);
    }
  };

  withSettings(
    program
      .command('run')
      .description('run the agent: apply the rules, keep them in step, serve /healthz, /readyz and /metrics')
      .addHelpText(
        'after',
        '\nEvery flag can be set through the environment variable named beside it; flags win.\nSIGTERM/SIGINT stop the agent and keep the rules, unless CLEANUP_ON_EXIT=true or its DaemonSet (DAEMONSET_NAME) is being deleted.\nOne agent per node: a second one in the same network namespace refuses to start (ERR_RC_AGENT_RUNNING, exit 1).',
      ),
    ALL,
  ).action(async (flags: RawSettings) => {
    const cfg = config(flags);
    if (cfg) await guard(async () => (await import('./commands/run.js')).runAgent(cfg));
  });

  withSettings(
    program
      .command('probe')
      .description(
        "show which firewall backend this node would use and why (each backend's probe, the iptables flavour evidence, the choice), where the Service CIDRs would come from, and whether kube-proxy already drops traffic to unallocated ClusterIPs",
      )
      .option('--json', 'print one JSON object'),
    PROBE,
  ).action(async (flags: RawSettings & { json?: boolean }) => {
    const cfg = config(flags);
    if (!cfg) return;
    await guard(async () =>
      (await import('./commands/probe.js')).probeCommand(await toolbox(cfg), { json: flags.json === true }, output),
    );
  });

  withSettings(
    program
      .command('plan')
      .description('show the desired state and the exact payload the chosen backend would apply, without applying it')
      .option('--json', 'print one JSON object (failures too)'),
    DISCOVERY,
  ).action(async (flags: RawSettings & { json?: boolean }) => {
    const cfg = config(flags);
    if (!cfg) return;
    await guard(async () =>
      (await import('./commands/plan.js')).planCommand(await toolbox(cfg), { json: flags.json === true }, output),
    );
  });

  withSettings(
    program
      .command('status')
      .description(
        'show what route-controller has installed on this node now, per backend, with drop counters, the stale ClusterIPs being dialled and by whom, and where the Service CIDRs come from',
      )
      .option('--json', 'print one JSON object')
      .addHelpText(
        'after',
        "\nGive it the agent's SERVICE_CIDRS or KUBECONFIG to compare what is installed with what the agent would install.",
      ),
    STATUS,
  ).action(async (flags: RawSettings & { json?: boolean }) => {
    const cfg = config(flags);
    if (!cfg) return;
    await guard(async () =>
      (await import('./commands/status.js')).statusCommand(await toolbox(cfg), { json: flags.json === true }, output),
    );
  });

  withSettings(
    program
      .command('cleanup')
      .description('remove everything route-controller installed, with every backend, and nothing else')
      .option('--force', 'remove the rules even though an agent runs on this node (it puts them back at once)')
      .addHelpText(
        'after',
        '\nRefuses (ERR_RC_AGENT_RUNNING, exit 1) while an agent runs on this node: it would put the rules back at once.\nStop the agent first (helm uninstall removes the rules by itself with routeController.cleanupOnUninstall).',
      ),
    ['logLevel'],
  ).action(async (flags: RawSettings & { force?: boolean }) => {
    const cfg = config(flags);
    if (!cfg) return;
    await guard(async () =>
      (await import('./commands/cleanup.js')).cleanupCommand(await toolbox(cfg), output, {
        force: flags.force === true,
      }),
    );
  });

  return program;
}

/** commander codes that are not errors: help (`--help`, `help`, `help <command>`) and version were asked for. */
const NOT_ERRORS = new Set(['commander.helpDisplayed', 'commander.help', 'commander.version']);

export async function main(argv: readonly string[] = process.argv, output: Output = processOutput): Promise<void> {
  const program = buildProgram(process.env, output, (code) => {
    process.exitCode = code;
  });
  program.exitOverride();
  for (const command of program.commands) command.exitOverride();
  if (argv.length <= 2) {
    output.err(
      describeError(
        new RouteControllerError(ErrorCodes.Usage, 'no command given', {
          hint: `Run route-controller --help for the commands: ${program.commands.map((c) => c.name()).join(', ')}.`,
        }),
      ),
    );
    process.exitCode = EXIT_CONFIGURATION;
    return;
  }
  try {
    await program.parseAsync([...argv]);
  } catch (error) {
    if (!(error instanceof CommanderError)) throw error;
    // `help frob` prints the help too, but frob is no command: exit code 1 from commander.
    if (NOT_ERRORS.has(error.code) && error.exitCode === 0) {
      process.exitCode = 0;
      return;
    }
    const named = program.commands.find((c) => c.name() === argv[2]);
    const command = named ? `route-controller ${named.name()}` : 'route-controller';
    const usage =
      error.code === 'commander.help'
        ? new RouteControllerError(ErrorCodes.Usage, `unknown command '${argv[3] ?? ''}'`, {
            hint: 'Run route-controller help for the commands.',
          })
        : usageError(error, command);
    output.err(describeError(usage));
    process.exitCode = EXIT_CONFIGURATION;
  }
}
