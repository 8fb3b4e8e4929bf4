import { execFileSync } from 'node:child_process';
import {
  type CommandResult,
  type CommandRunner,
  formatCommand,
  PrefixedCommandRunner,
  PrefixedStreamRunner,
  ProcessCommandRunner,
  ProcessStreamRunner,
  type StreamRunner,
} from '@route-controller/core';

/**
 * Every namespace made here is named `<prefix>-<pid>-<n>-<label>`: unique per process, so parallel
 * test files never collide, and traceable to its creator, so strays of killed runs can be swept.
 * Tests use the default prefix; `pnpm demo` uses its own.
 */
export const NETNS_PREFIX = 'rct';

const host = new ProcessCommandRunner({ defaultTimeoutMs: 30_000 });
const hostStreams = new ProcessStreamRunner();
const live = new Set<string>();
let counter = 0;
let exitHookInstalled = false;

/** Removes this process's namespaces when it exits, even when a run is cut short. */
function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.once('exit', removeLiveNamespacesSync);
}

/**
 * Deletes every namespace this process still holds, synchronously (for exit and signal paths),
 * killing what still runs inside first: `ip netns del` only removes the name, and a process in the
 * namespace would keep running in it, unreachable, for ever.
 */
export function removeLiveNamespacesSync(): void {
  for (const name of live) {
    deleteNamespaceSync(name);
    live.delete(name);
  }
}

function deleteNamespaceSync(name: string): void {
  for (const pid of pidsInSync(name)) signalPid(pid, 'SIGKILL');
  try {
    execFileSync('ip', ['netns', 'del', name], { stdio: 'ignore' });
  } catch {
    // already gone, or raced with another cleaner
  }
}

function pidsInSync(name: string): number[] {
  try {
    return parsePids(execFileSync('ip', ['netns', 'pids', name], { encoding: 'utf8' }));
  } catch {
    return [];
  }
}

const parsePids = (text: string): number[] => text.split(/\s+/).filter(Boolean).map(Number);

function signalPid(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(pid, signal);
  } catch {
    // exited meanwhile
  }
}

export class CommandError extends Error {
  constructor(
    readonly command: string,
    readonly result: CommandResult,
  ) {
    super(`${command} exited ${result.exitCode}: ${result.stderr.trim() || result.stdout.trim()}`);
  }
}

/** A throwaway network namespace; commands given to it run inside it. */
export class Netns {
  readonly runner: CommandRunner;
  /** Starts long-lived processes inside (a backend's change event monitor). */
  readonly streams: StreamRunner;

  private constructor(readonly name: string) {
    this.runner = new PrefixedCommandRunner(host, ['ip', 'netns', 'exec', name]);
    this.streams = new PrefixedStreamRunner(hostStreams, ['ip', 'netns', 'exec', name]);
  }

  /** Creates a namespace with a name unique to this process, with loopback up. */
  static async create(label: string, prefix: string = NETNS_PREFIX): Promise<Netns> {
    installExitHook();
    counter += 1;
    const name = `${prefix}-${process.pid}-${counter}-${label}`;
    await mustRun(host, 'ip', ['netns', 'add', name]);
    live.add(name);
    const ns = new Netns(name);
    await ns.must('ip', ['link', 'set', 'lo', 'up']);
    return ns;
  }

  /** Runs a command inside; a non-zero exit is returned, not thrown. */
  exec(file: string, args: readonly string[], input?: string): Promise<CommandResult> {
    return this.runner.run(input === undefined ? { file, args } : { file, args, input });
  }

  /** Runs a command inside and throws on a non-zero exit. */
  must(file: string, args: readonly string[], input?: string): Promise<CommandResult> {
    return mustRun(this.runner, file, args, input);
  }

  async sysctl(settings: Readonly<Record<string, string | number>>): Promise<void> {
    await this.must('sysctl', ['-q', '-w', ...Object.entries(settings).map(([key, value]) => `${key}=${value}`)]);
  }

  /** A veth pair, both ends up: `name` here, `peerName` inside `peer`. */
  async veth(name: string, peer: Netns, peerName: string): Promise<void> {
    await this.must('ip', ['link', 'add', name, 'type', 'veth', 'peer', 'name', peerName, 'netns', peer.name]);
    await this.must('ip', ['link', 'set', name, 'up']);
    await peer.must('ip', ['link', 'set', peerName, 'up']);
  }

  /** Adds `cidr` (address/prefix) to `dev`; IPv6 without duplicate address detection, so usable at once. */
  async addAddress(dev: string, cidr: string): Promise<void> {
    await this.must('ip', ['addr', 'add', cidr, 'dev', dev, ...(cidr.includes(':') ? ['nodad'] : [])]);
  }

  /** The processes inside this namespace now (`ip netns pids`), whoever started them. */
  async pids(): Promise<number[]> {
    const result = await host.run({ file: 'ip', args: ['netns', 'pids', this.name] });
    return result.exitCode === 0 ? parsePids(result.stdout) : [];
  }

  /**
   * Ends every process still inside (SIGTERM, then SIGKILL after `graceMs`), then deletes the
   * namespace: a process left in a deleted namespace would run on, unreachable, for ever.
   */
  async delete(graceMs = 2_000): Promise<void> {
    if (!live.has(this.name)) return;
    const inside = await this.pids();
    if (inside.length > 0) {
      for (const pid of inside) signalPid(pid, 'SIGTERM');
      const deadline = Date.now() + graceMs;
      while ((await this.pids()).length > 0 && Date.now() < deadline) await sleep(50);
      for (const pid of await this.pids()) signalPid(pid, 'SIGKILL');
    }
    live.delete(this.name);
    await host.run({ file: 'ip', args: ['netns', 'del', this.name] });
  }
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function mustRun(runner: CommandRunner, file: string, args: readonly string[], input?: string) {
  const result = await runner.run(input === undefined ? { file, args } : { file, args, input });
  if (result.exitCode !== 0) throw new CommandError(formatCommand({ file, args }), result);
  return result;
}

/** Names of namespaces with `prefix` whose creating process is gone (a killed earlier run). */
export function strayNamespaces(prefix: string = NETNS_PREFIX): string[] {
  let listing = '';
  try {
    listing = execFileSync('ip', ['netns', 'list'], { encoding: 'utf8' });
  } catch {
    return [];
  }
  return listing
    .split('\n')
    .map((line) => line.split(' ')[0] ?? '')
    .filter((name) => {
      const match = new RegExp(`^${prefix}-(\\d+)-`).exec(name);
      return match !== null && !processAlive(Number(match[1]));
    });
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Deletes the strays of `prefix`, killing whatever still runs in them (an agent of a killed run). */
export function removeStrayNamespaces(prefix: string = NETNS_PREFIX): string[] {
  const stray = strayNamespaces(prefix);
  for (const name of stray) deleteNamespaceSync(name);
  return stray;
}
