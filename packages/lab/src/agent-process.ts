import { type ChildProcess, spawn } from 'node:child_process';
import { type CommandResult, ProcessCommandRunner } from '@route-controller/core';
import type { Netns } from './netns.js';

/**
 * Which agent to run: the lab does not know where the agent lives (it must not depend on it); its
 * caller does: the agent's own CLI passes its bin, the tests resolve it from the agent's manifest.
 */
export interface AgentBin {
  /** The agent's executable script (`bin/route-controller.js`), run with this process's Node. */
  readonly bin: string;
}

const cli = new ProcessCommandRunner({ defaultTimeoutMs: 60_000 });

/** PATH and HOME of this process; nothing else leaks into the agent's environment. */
function baseEnv(): Record<string, string> {
  return { PATH: process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin', HOME: process.env.HOME ?? '/root' };
}

export interface LogLine {
  readonly level: string;
  readonly time: string;
  readonly msg: string;
  readonly component?: string;
  readonly [key: string]: unknown;
}

export interface AgentExit {
  readonly exitCode: number | undefined;
  readonly signal: string | undefined;
}

/**
 * `route-controller run` inside a namespace, as the DaemonSet runs it on a node (host network):
 * its JSON log lines are collected and can be waited for.
 */
export class AgentProcess {
  readonly logs: LogLine[] = [];
  readonly stderr: string[] = [];
  readonly startedAt = Date.now();
  readonly exited: Promise<AgentExit>;
  readonly #child: ChildProcess;
  readonly #waiters = new Set<() => void>();

  private constructor(
    readonly ns: Netns,
    env: Readonly<Record<string, string>>,
    args: readonly string[],
    agent: AgentBin,
  ) {
    this.#child = spawn('ip', ['netns', 'exec', ns.name, process.execPath, agent.bin, 'run', ...args], {
      env: { LISTEN_ADDRESS: 'off', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    this.#child.stdout?.setEncoding('utf8');
    let pending = '';
    this.#child.stdout?.on('data', (chunk: string) => {
      pending += chunk;
      const lines = pending.split('\n');
      pending = lines.pop() ?? '';
      for (const line of lines) {
        if (!line.trim()) continue;
        try {
          this.logs.push(JSON.parse(line) as LogLine);
        } catch {
          this.logs.push({ level: 'raw', time: new Date().toISOString(), msg: line });
        }
      }
      for (const wake of this.#waiters) wake();
    });
    this.#child.stderr?.setEncoding('utf8');
    this.#child.stderr?.on('data', (chunk: string) => this.stderr.push(chunk));
    this.exited = new Promise((resolve) => {
      this.#child.once('close', (code, signal) => {
        for (const wake of this.#waiters) wake();
        resolve({ exitCode: code ?? undefined, signal: signal ?? undefined });
      });
    });
  }

  /** Starts `agent.bin run ...args` in `ns`; PATH and HOME come from this process, everything else from `env`. */
  static start(
    ns: Netns,
    env: Readonly<Record<string, string>>,
    args: readonly string[],
    agent: AgentBin,
  ): AgentProcess {
    return new AgentProcess(ns, { ...baseEnv(), ...env }, args, agent);
  }

  get pid(): number | undefined {
    return this.#child.pid;
  }

  /** Resolves with the first log line matching, or rejects after `timeoutMs` with the logs so far. */
  waitForLog(match: (line: LogLine) => boolean, timeoutMs = 10_000, from = 0): Promise<LogLine> {
    return new Promise((resolve, reject) => {
      let done = false;
      const check = () => {
        if (done) return;
        const found = this.logs.slice(from).find(match);
        if (found) {
          done = true;
          cleanup();
          resolve(found);
        }
      };
      const timer = setTimeout(() => {
        done = true;
        cleanup();
        reject(new Error(`no matching log line within ${timeoutMs} ms; logs:\n${this.dump()}`));
      }, timeoutMs);
      const cleanup = () => {
        clearTimeout(timer);
        this.#waiters.delete(check);
      };
      this.#waiters.add(check);
      check();
    });
  }

  waitForMessage(fragment: string | RegExp, timeoutMs = 10_000, from = 0): Promise<LogLine> {
    return this.waitForLog(
      (line) => (typeof fragment === 'string' ? line.msg.includes(fragment) : fragment.test(line.msg)),
      timeoutMs,
      from,
    );
  }

  /** Milliseconds from spawning to a log line's timestamp. */
  elapsedAt(line: LogLine): number {
    return Date.parse(line.time) - this.startedAt;
  }

  signal(signal: NodeJS.Signals): void {
    // `ip netns exec` execs the agent: the pid is the agent's own.
    this.#child.kill(signal);
  }

  async stop(signal: NodeJS.Signals = 'SIGTERM', timeoutMs = 5_000): Promise<AgentExit> {
    this.signal(signal);
    const timer = setTimeout(() => this.#child.kill('SIGKILL'), timeoutMs);
    try {
      return await this.exited;
    } finally {
      clearTimeout(timer);
    }
  }

  dump(): string {
    return [...this.logs.map((line) => `${line.level} ${line.component ?? ''} ${line.msg}`), ...this.stderr].join('\n');
  }
}

/** Runs a one-shot CLI command (probe, plan, status, cleanup) inside `ns`. */
export async function runCli(
  ns: Netns,
  args: readonly string[],
  env: Readonly<Record<string, string>>,
  agent: AgentBin,
): Promise<CommandResult> {
  const assignments = Object.entries({ ...baseEnv(), ...env }).map(([key, value]) => `${key}=${value}`);
  // `env -i`: the command sees only the variables given, as a container would.
  return cli.run({
    file: 'ip',
    args: ['netns', 'exec', ns.name, 'env', '-i', ...assignments, process.execPath, agent.bin, ...args],
  });
}

/** GETs a path from the agent's endpoint, from inside its namespace. */
export async function httpGet(ns: Netns, url: string): Promise<{ status: number; body: string }> {
  const script = `fetch(${JSON.stringify(url)}).then(async (r) => { process.stdout.write(JSON.stringify({ status: r.status, body: await r.text() })); }, (e) => { process.stdout.write(JSON.stringify({ status: 0, body: String(e.cause ?? e) })); })`;
  const result = await ns.must(process.execPath, ['-e', script]);
  return JSON.parse(result.stdout) as { status: number; body: string };
}
