import { type ChildProcess, spawn } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import type { Readable } from 'node:stream';

export interface ProcessExit {
  readonly exitCode: number | undefined;
  readonly signal: string | undefined;
}

/**
 * Every agent the lab starts carries `ROUTE_CONTROLLER_LAB_AGENT=<session>` in its environment, so
 * whoever ran a session can find its agents in /proc even after the process that started them is
 * gone (a crashed or killed test worker leaves them with parent PID 1). The session is
 * `ROUTE_CONTROLLER_LAB_SESSION` when a harness sets it (the test run's global setup does, and its
 * workers inherit it), else this process.
 */
export const AGENT_TAG_VARIABLE = 'ROUTE_CONTROLLER_LAB_AGENT';
export const SESSION_VARIABLE = 'ROUTE_CONTROLLER_LAB_SESSION';

export function labSession(): string {
  return process.env[SESSION_VARIABLE] || `pid-${process.pid}`;
}

const running = new Set<LabProcess>();
let exitHookInstalled = false;

/** When this process exits, whatever path it takes, the processes it started go with it. */
function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.once('exit', () => {
    for (const child of running) child.signal('SIGKILL');
  });
}

export interface LabProcessOptions {
  /** The whole environment of the process: nothing is inherited. */
  readonly env: Readonly<Record<string, string>>;
  /** What the process is, for people: "route-controller run in rct-1-2-node". */
  readonly description: string;
}

/**
 * A process the lab started, tracked from spawn to exit: `LabProcess.running()` lists those still
 * alive, so a test harness can end them with their test and fail when one outlives it.
 * `ip netns exec` execs its command, so the pid is the command's own and signals reach it.
 */
export class LabProcess {
  readonly startedAt = Date.now();
  readonly exited: Promise<ProcessExit>;
  readonly description: string;
  readonly #child: ChildProcess;
  #exit: ProcessExit | undefined;

  constructor(file: string, args: readonly string[], options: LabProcessOptions) {
    this.description = options.description;
    this.#child = spawn(file, [...args], { env: { ...options.env }, stdio: ['ignore', 'pipe', 'pipe'] });
    installExitHook();
    running.add(this);
    this.exited = new Promise((resolve) => {
      const settle = (exit: ProcessExit) => {
        running.delete(this);
        this.#exit ??= exit;
        resolve(this.#exit);
      };
      this.#child.once('error', () => settle({ exitCode: undefined, signal: undefined }));
      // 'close', not 'exit': by then every line the process wrote has been read.
      this.#child.once('close', (code, signal) => settle({ exitCode: code ?? undefined, signal: signal ?? undefined }));
    });
  }

  /** The processes the lab started in this process that have not exited yet. */
  static running(): readonly LabProcess[] {
    return [...running];
  }

  get pid(): number | undefined {
    return this.#child.pid;
  }

  get isRunning(): boolean {
    return running.has(this);
  }

  get stdout(): Readable {
    return this.#child.stdout as Readable;
  }

  get stderr(): Readable {
    return this.#child.stderr as Readable;
  }

  signal(signal: NodeJS.Signals): void {
    if (this.isRunning) this.#child.kill(signal);
  }

  /** Sends `signal`, then SIGKILL if the process is still there after `graceMs`; resolves on exit. */
  async stop(signal: NodeJS.Signals = 'SIGTERM', graceMs = 5_000): Promise<ProcessExit> {
    this.signal(signal);
    const timer = setTimeout(() => this.signal('SIGKILL'), graceMs);
    try {
      return await this.exited;
    } finally {
      clearTimeout(timer);
    }
  }

  /** "route-controller run in rct-1-2-node (pid 1234, started 5.2 s ago)". */
  toString(): string {
    const age = ((Date.now() - this.startedAt) / 1000).toFixed(1);
    return `${this.description} (pid ${this.pid ?? '?'}, started ${age} s ago)`;
  }
}

export interface TaggedProcess {
  readonly pid: number;
  readonly parentPid: number;
  readonly command: string;
}

/**
 * Live processes whose environment carries this session's agent tag, found in /proc: agents a
 * session started, whoever their parent is now.
 */
export function findSessionAgents(session: string = labSession()): TaggedProcess[] {
  const tag = `${AGENT_TAG_VARIABLE}=${session}`;
  const found: TaggedProcess[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      if (!readFileSync(`/proc/${entry}/environ`, 'latin1').split('\0').includes(tag)) continue;
      const stat = readFileSync(`/proc/${entry}/stat`, 'latin1');
      const [state, parent] = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      if (state === 'Z') continue;
      const command = readFileSync(`/proc/${entry}/cmdline`, 'latin1').split('\0').filter(Boolean).join(' ');
      found.push({ pid: Number(entry), parentPid: Number(parent), command });
    } catch {
      // gone meanwhile, or not ours to read
    }
  }
  return found;
}
