import { spawn } from 'node:child_process';
import { accessSync, constants } from 'node:fs';

/** What a finished process left: a non-zero exit is data, not an error. */
export interface ProcessResult {
  readonly exitCode: number;
  readonly signal: NodeJS.Signals | null;
  readonly stdout: string;
  readonly stderr: string;
}

export interface RunOptions {
  readonly input?: string;
  readonly cwd?: string;
  readonly env?: Readonly<Record<string, string | undefined>>;
  /** Killed (SIGKILL) after this long; the result then carries the signal. */
  readonly timeoutMs?: number;
  /** Lines of output as they come, for long builds. */
  readonly onOutput?: (chunk: string) => void;
}

export class ProcessError extends Error {
  constructor(
    readonly command: string,
    readonly result: ProcessResult,
  ) {
    const tail = (text: string, lines: number) => text.trim().split('\n').slice(-lines).join('\n');
    const output = [tail(result.stdout, 25), tail(result.stderr, 25)].filter(Boolean).join('\n');
    super(`${command} exited ${result.signal ?? result.exitCode}: ${output}`);
  }
}

export function formatArgs(file: string, args: readonly string[]): string {
  return [file, ...args].map((part) => (/^[\w@%+=:,./-]+$/.test(part) ? part : JSON.stringify(part))).join(' ');
}

/** Runs a program with an argument array (never a shell string); spawn failures reject. */
export function run(file: string, args: readonly string[], options: RunOptions = {}): Promise<ProcessResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(file, [...args], {
      cwd: options.cwd,
      env: options.env ? { ...process.env, ...options.env } : process.env,
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
      stdout += chunk;
      options.onOutput?.(chunk);
    });
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => {
      stderr += chunk;
      options.onOutput?.(chunk);
    });
    const timer =
      options.timeoutMs === undefined ? undefined : setTimeout(() => child.kill('SIGKILL'), options.timeoutMs);
    child.on('error', (error) => {
      if (timer) clearTimeout(timer);
      reject(new Error(`cannot run ${formatArgs(file, args)}: ${error.message}`, { cause: error }));
    });
    child.on('close', (code, signal) => {
      if (timer) clearTimeout(timer);
      resolve({ exitCode: code ?? -1, signal, stdout, stderr });
    });
    child.stdin.on('error', () => {
      // the program exited before reading its input: its exit code tells why
    });
    child.stdin.end(options.input ?? '');
  });
}

/** Runs a program and throws a ProcessError, with its output, on a non-zero exit. */
export async function must(file: string, args: readonly string[], options: RunOptions = {}): Promise<ProcessResult> {
  const result = await run(file, args, options);
  if (result.exitCode !== 0) throw new ProcessError(formatArgs(file, args), result);
  return result;
}

/** Whether a process of this id is alive (EPERM: alive, someone else's). */
export function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Whether an executable of this name is on PATH (or in the sbin directories root has). */
export function onPath(name: string): boolean {
  return findOnPath(name) !== undefined;
}

export function findOnPath(name: string): string | undefined {
  for (const dir of (process.env.PATH ?? '').split(':').concat(['/usr/sbin', '/sbin'])) {
    if (!dir) continue;
    try {
      accessSync(`${dir}/${name}`, constants.X_OK);
      return `${dir}/${name}`;
    } catch {
      // keep looking
    }
  }
  return undefined;
}
