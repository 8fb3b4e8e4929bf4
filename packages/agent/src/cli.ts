import { ErrorCodes } from '@route-controller/core';
import { Command, Option } from 'commander';
import { cleanupCommand } from './commands/cleanup.js';
import { describeError, type Output, processOutput } from './commands/output.js';
import { planCommand } from './commands/plan.js';
import { probeCommand } from './commands/probe.js';
import { runAgent } from './commands/run.js';
import { statusCommand } from './commands/status.js';
import { type AgentConfig, loadConfig } from './config/config.js';
import { type RawSettings, SETTINGS, type SettingSpec } from './config/settings.js';
import { composeToolbox, createAgentContainer, type Toolbox } from './container.js';
import { createLogger } from './observability/logger.js';
import { VERSION } from './version.js';

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
const DISCOVERY: readonly (keyof RawSettings)[] = ['serviceCidrs', 'backend', 'action', 'logLevel', 'kubeconfig'];

/** Builds the CLI; `exit` receives each command's exit code. */
export function buildProgram(
  env: Readonly<Record<string, string | undefined>>,
  output: Output,
  exit: (code: number) => void,
): Command {
  const program = new Command('route-controller')
    .description(DESCRIPTION)
    .version(VERSION, '-v, --version', 'print the version')
    .showHelpAfterError('(run with --help for usage)')
    .configureOutput({ writeOut: (s) => output.out(s), writeErr: (s) => output.err(s) });

  /** Validates settings before any command touches the node: bad input exits 2, changing nothing. */
  const config = (flags: RawSettings): AgentConfig | undefined => {
    try {
      return loadConfig(env, flags);
    } catch (error) {
      output.err(describeError(error));
      exit(2);
      return undefined;
    }
  };
  const toolbox = (cfg: AgentConfig): Toolbox =>
    // One-shot commands log to stderr so stdout stays clean for --json.
    composeToolbox(
      createAgentContainer(cfg, { logger: createLogger(cfg.logLevel === 'info' ? 'warn' : cfg.logLevel, 2) }),
    );
  const guard = async (work: () => Promise<number>) => {
    try {
      exit(await work());
    } catch (error) {
      output.err(describeError(error));
      exit(1);
    }
  };

  withSettings(
    program
      .command('run')
      .description('run the agent: apply the rules, keep them in step, serve /healthz, /readyz and /metrics')
      .addHelpText(
        'after',
        '\nEvery flag can be set through the environment variable named beside it; flags win.\nSIGTERM/SIGINT stop the agent and keep the rules, unless CLEANUP_ON_EXIT=true.',
      ),
    ALL,
  ).action(async (flags: RawSettings) => {
    const cfg = config(flags);
    if (cfg) await guard(() => runAgent(cfg));
  });

  withSettings(
    program
      .command('probe')
      .description(
        "show which firewall backend this node would use and why: each backend's probe, the iptables flavour evidence, the choice",
      )
      .option('--json', 'print one JSON object'),
    ['backend', 'logLevel'],
  ).action(async (flags: RawSettings & { json?: boolean }) => {
    const cfg = config(flags);
    if (cfg) await guard(() => probeCommand(toolbox(cfg), { json: flags.json === true }, output));
  });

  withSettings(
    program
      .command('plan')
      .description('show the desired state and the exact payload the chosen backend would apply, without applying it')
      .option('--json', 'print one JSON object'),
    DISCOVERY,
  ).action(async (flags: RawSettings & { json?: boolean }) => {
    const cfg = config(flags);
    if (cfg) await guard(() => planCommand(toolbox(cfg), { json: flags.json === true }, output));
  });

  withSettings(
    program
      .command('status')
      .description('show what route-controller has installed on this node now, per backend, with drop counters')
      .option('--json', 'print one JSON object'),
    ['logLevel'],
  ).action(async (flags: RawSettings & { json?: boolean }) => {
    const cfg = config(flags);
    if (cfg) await guard(() => statusCommand(toolbox(cfg), { json: flags.json === true }, output));
  });

  withSettings(
    program
      .command('cleanup')
      .description('remove everything route-controller installed, with every backend, and nothing else'),
    ['logLevel'],
  ).action(async (flags: RawSettings) => {
    const cfg = config(flags);
    if (cfg) await guard(() => cleanupCommand(toolbox(cfg), output));
  });

  program
    .command('demo')
    .description(
      'show the loop and its end (root, from a source checkout): build a lab in throwaway network namespaces, loop packets to a stale ClusterIP, then run the agent there with every backend this machine supports',
    )
    .option('--json', 'print one JSON object instead of the report')
    .option('--pings <count>', 'pings per measurement', '10')
    .action(async (flags: { json?: boolean; pings: string }) => {
      const pings = Number(flags.pings);
      if (!Number.isInteger(pings) || pings < 1 || pings > 1000) {
        output.err(
          `error ${ErrorCodes.InvalidConfig}: --pings="${flags.pings}" is invalid\n  hint: Set --pings to a whole number from 1 to 1000.`,
        );
        exit(2);
        return;
      }
      await guard(() =>
        import('./commands/demo.js').then(({ demoCommand }) =>
          demoCommand({ json: flags.json === true, pings }, output),
        ),
      );
    });

  return program;
}

export async function main(argv: readonly string[] = process.argv): Promise<void> {
  const program = buildProgram(process.env, processOutput, (code) => {
    process.exitCode = code;
  });
  program.exitOverride((error) => {
    process.exitCode = error.exitCode;
    throw error;
  });
  try {
    await program.parseAsync([...argv]);
  } catch {
    // commander has printed the usage error; the exit code is set
  }
}
