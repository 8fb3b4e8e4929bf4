import { readFileSync } from 'node:fs';
import { type CommandResult, ErrorCodes, RouteControllerError } from '@route-controller/core';
import type { Netns } from './netns.js';
import { AGENT_TAG_VARIABLE, LabProcess, labSession, type ProcessExit } from './processes.js';

/**
 * Which agent to run: the lab does not know where the agent lives (it must not depend on it); its
 * caller does: the agent's own CLI passes its bin, the tests resolve it from the agent's manifest.
 */
export interface AgentBin {
  /** The agent's executable script (`bin/route-controller.cjs`), run with this process's Node. */
  readonly bin: string;
  /**
   * Instead of `bin`: the command that starts the agent, as given (e.g. `chroot <image root>
   * /usr/local/bin/route-controller`, to run a container image's agent with the image's own Node).
   */
  readonly command?: readonly string[];
}

/** The argv prefix that starts the agent described by `agent`. */
function agentCommand(agent: AgentBin): readonly string[] {
  return agent.command ?? nodeCommand(agent.bin);
}

/** PATH and HOME of this process, and the lab's tag; nothing else leaks into the agent's environment. */
function baseEnv(): Record<string, string> {
  return {
    PATH: process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin',
    HOME: process.env.HOME ?? '/root',
    [AGENT_TAG_VARIABLE]: labSession(),
  };
}

export interface LogLine {
  readonly level: string;
  readonly time: string;
  readonly msg: string;
  readonly component?: string;
  readonly [key: string]: unknown;
}

export type AgentExit = ProcessExit;

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * `route-controller run` inside a namespace, as the DaemonSet runs it on a node (host network):
 * its JSON log lines are collected and can be waited for.
 */
export class AgentProcess {
  readonly logs: LogLine[] = [];
  readonly stderr: string[] = [];
  readonly exited: Promise<AgentExit>;
  readonly #process: LabProcess;
  readonly #waiters = new Set<() => void>();

  private constructor(
    readonly ns: Netns,
    readonly env: Readonly<Record<string, string>>,
    args: readonly string[],
    agent: AgentBin,
  ) {
    this.#process = new LabProcess('ip', ['netns', 'exec', ns.name, ...agentCommand(agent), 'run', ...args], {
      env,
      description: `route-controller run${args.length > 0 ? ` ${args.join(' ')}` : ''} in ${ns.name} (${describeEnv(env)})`,
    });
    this.#process.stdout.setEncoding('utf8');
    let pending = '';
    this.#process.stdout.on('data', (chunk: string) => {
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
    this.#process.stderr.setEncoding('utf8');
    this.#process.stderr.on('data', (chunk: string) => this.stderr.push(chunk));
    this.exited = this.#process.exited.then((exit) => {
      for (const wake of this.#waiters) wake();
      return exit;
    });
  }

  /**
   * Starts `agent.bin run ...args` in `ns` with LISTEN_ADDRESS=off and METRICS_LISTEN_ADDRESS=off
   * unless `env` says otherwise (nothing listens unless asked); PATH and HOME come from this process,
   * everything else from `env`.
   */
  static start(
    ns: Netns,
    env: Readonly<Record<string, string>>,
    args: readonly string[],
    agent: AgentBin,
  ): AgentProcess {
    return new AgentProcess(
      ns,
      { LISTEN_ADDRESS: 'off', METRICS_LISTEN_ADDRESS: 'off', ...baseEnv(), ...env },
      args,
      agent,
    );
  }

  get pid(): number | undefined {
    return this.#process.pid;
  }

  get startedAt(): number {
    return this.#process.startedAt;
  }

  get isRunning(): boolean {
    return this.#process.isRunning;
  }

  /**
   * Resolves with the first line whose message is `msg` and whose fields hold `fields` (each equal),
   * or rejects after `timeoutMs` with the logs so far. Messages are constant; values are fields.
   */
  waitForLine(msg: string, fields: Readonly<Record<string, unknown>> = {}, timeoutMs = 10_000): Promise<LogLine> {
    return this.waitForLog(
      (line) => line.msg === msg && Object.entries(fields).every(([key, value]) => line[key] === value),
      timeoutMs,
    );
  }

  /** The one start-up summary line (`summary: true`): the backend chosen and why, among the rest. */
  waitForSummary(timeoutMs = 10_000): Promise<LogLine> {
    return this.waitForLog((line) => line.summary === true, timeoutMs);
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

  /**
   * Resolves once `/readyz` answers 200 (the rules are applied and in step), asked from inside the
   * namespace at the agent's LISTEN_ADDRESS. Readiness, not a log line: an agent that finds the
   * rules already in place has nothing to announce, but it is ready all the same.
   */
  async waitUntilReady(timeoutMs = 10_000): Promise<void> {
    const listen = this.env.LISTEN_ADDRESS ?? 'off';
    if (listen === 'off') throw new Error('waitUntilReady needs the agent started with a LISTEN_ADDRESS');
    const url = `http://${listen.replace(/^(0\.0\.0\.0)?:/, '127.0.0.1:')}/readyz`;
    const deadline = Date.now() + timeoutMs;
    let last = 'not asked yet';
    for (;;) {
      if (!this.isRunning) throw new Error(`the agent exited before it was ready; logs:\n${this.dump()}`);
      const answer = await httpGet(this.ns, url);
      if (answer.status === 200) return;
      last = `${answer.status} ${answer.body.trim()}`;
      if (Date.now() > deadline) {
        throw new Error(`${url} not 200 within ${timeoutMs} ms (last: ${last}); logs:\n${this.dump()}`);
      }
      await sleep(100);
    }
  }

  /** Resolves with the exit, or rejects if the agent is still running after `timeoutMs`. */
  async exitWithin(timeoutMs = 10_000): Promise<AgentExit> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(new Error(`the agent did not exit within ${timeoutMs} ms; logs:\n${this.dump()}`)),
        timeoutMs,
      );
    });
    try {
      return await Promise.race([this.exited, timeout]);
    } finally {
      clearTimeout(timer);
    }
  }

  /** Milliseconds from spawning to a log line's timestamp. */
  elapsedAt(line: LogLine): number {
    return Date.parse(line.time) - this.startedAt;
  }

  signal(signal: NodeJS.Signals): void {
    this.#process.signal(signal);
  }

  /** Sends `signal`, then SIGKILL after `graceMs` if the agent is still there; resolves on exit. */
  stop(signal: NodeJS.Signals = 'SIGTERM', graceMs = 5_000): Promise<AgentExit> {
    return this.#process.stop(signal, graceMs);
  }

  dump(): string {
    return [...this.logs.map((line) => `${line.level} ${line.component ?? ''} ${line.msg}`), ...this.stderr].join('\n');
  }
}

/** The settings a person needs to recognise an agent: everything but PATH, HOME and the lab's tag. */
function describeEnv(env: Readonly<Record<string, string>>): string {
  return Object.entries(env)
    .filter(([key]) => !['PATH', 'HOME', AGENT_TAG_VARIABLE].includes(key))
    .map(([key, value]) => `${key}=${value}`)
    .join(' ');
}

export interface CliOptions extends AgentBin {
  /** Killed (SIGKILL) and rejected after this long; default 60 s. */
  readonly timeoutMs?: number;
}

/** Runs a one-shot CLI command (probe, plan, status, cleanup) inside `ns`; a non-zero exit is data. */
export async function runCli(
  ns: Netns,
  args: readonly string[],
  env: Readonly<Record<string, string>>,
  options: CliOptions,
): Promise<CommandResult> {
  const timeoutMs = options.timeoutMs ?? 60_000;
  const all = { ...baseEnv(), ...env };
  const assignments = Object.entries(all).map(([key, value]) => `${key}=${value}`);
  // `env -i`: the command sees only the variables given, as a container would.
  const child = new LabProcess(
    'ip',
    ['netns', 'exec', ns.name, 'env', '-i', ...assignments, ...nodeCommand(options.bin), ...args],
    { env: all, description: `route-controller ${args.join(' ')} in ${ns.name}` },
  );
  const stdout: string[] = [];
  const stderr: string[] = [];
  child.stdout.setEncoding('utf8');
  child.stderr.setEncoding('utf8');
  child.stdout.on('data', (chunk: string) => stdout.push(chunk));
  child.stderr.on('data', (chunk: string) => stderr.push(chunk));
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    child.signal('SIGKILL');
  }, timeoutMs);
  const exit = await child.exited.finally(() => clearTimeout(timer));
  const command = `route-controller ${args.join(' ')}`;
  if (timedOut) {
    throw new RouteControllerError(ErrorCodes.CommandTimeout, `${command} did not finish within ${timeoutMs} ms`, {
      details: { command, timeoutMs, stderr: stderr.join('') },
    });
  }
  if (exit.exitCode === undefined) {
    throw new RouteControllerError(ErrorCodes.CommandKilled, `${command} was killed by ${exit.signal ?? 'a signal'}`, {
      details: { command, signal: exit.signal, stderr: stderr.join('') },
    });
  }
  return { exitCode: exit.exitCode, stdout: stdout.join(''), stderr: stderr.join('') };
}

/** GETs a path from the agent's endpoint, from inside its namespace. */
export async function httpGet(ns: Netns, url: string): Promise<{ status: number; body: string }> {
  const script = `fetch(${JSON.stringify(url)}, { signal: AbortSignal.timeout(5000) }).then(async (r) => { process.stdout.write(JSON.stringify({ status: r.status, body: await r.text() })); }, (e) => { process.stdout.write(JSON.stringify({ status: 0, body: String(e.cause ?? e) })); })`;
  const result = await ns.must(process.execPath, ['-e', script]);
  return JSON.parse(result.stdout) as { status: number; body: string };
}

/**
 * How to start a Node script as its shebang says, with this process's Node: `#!/usr/bin/env -S node
 * --max-opt=0` gives [node, --max-opt=0, script]. The agent's bin carries
 * V8 flags there, and the lab must run what users run (`node <script>` alone would drop them).
 */
export function nodeCommand(script: string): string[] {
  const first = readFileSync(script, 'utf8').split('\n', 1)[0] ?? '';
  const shebang = /^#!\S*\/env\s+(?:-S\s+)?node((?:\s+--?[\w-]+(?:=\S+)?)*)\s*$/.exec(first);
  const flags = shebang?.[1]?.trim().split(/\s+/).filter(Boolean) ?? [];
  return [process.execPath, ...flags, script];
}
