import { type ChildProcess, spawn } from 'node:child_process';
import {
  closeSync,
  existsSync,
  mkdirSync,
  openSync,
  readFileSync,
  readlinkSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { must, processAlive, run } from './image-exec.js';
import type { Buildah, ImageConfig } from './image-storage.js';

/**
 * Runs the image as the chart's DaemonSet runs it, with an OCI runtime (runc, as containerd does for
 * kubelet): in the node's network namespace (hostNetwork: true), uid 0 with only NET_ADMIN and NET_RAW
 * (capabilities drop ALL, add those two; not privileged; no privilege escalation), a read-only root
 * filesystem, the host's /run/xtables.lock mounted in (hostPath, FileOrCreate), the image's own
 * entrypoint and environment plus the chart's variables, and its own PID namespace (the agent is PID 1).
 */

export const AGENT_CAPABILITIES = ['CAP_NET_ADMIN', 'CAP_NET_RAW'] as const;

/** Capability bit numbers (linux/capability.h) of the two the agent gets. */
export const AGENT_CAPABILITY_MASK = (1n << 12n) | (1n << 13n);

const RUNC_ROOT = '/run/route-controller-test/runc';
const XTABLES_LOCK = '/run/xtables.lock';

export interface ContainerOptions {
  /** A unique name: the runc container id and the buildah working container's name. */
  readonly name: string;
  readonly image: string;
  /** A network namespace file, e.g. /run/netns/<name>. */
  readonly netns: string;
  /** Added to the image's environment, as the chart's `env:` does. */
  readonly env: Readonly<Record<string, string>>;
  /** Replaces the image's entrypoint and command (as a pod's `command:` does); default: the image's. */
  readonly command?: readonly string[];
}

function mergeEnv(image: readonly string[], extra: Readonly<Record<string, string>>): string[] {
  const merged = new Map<string, string>();
  for (const entry of image) {
    const eq = entry.indexOf('=');
    merged.set(entry.slice(0, eq), entry.slice(eq + 1));
  }
  for (const [key, value] of Object.entries(extra)) merged.set(key, value);
  return [...merged].map(([key, value]) => `${key}=${value}`);
}

/** The OCI runtime spec for one container of the DaemonSet's pod. */
export function ociSpec(options: {
  readonly rootfs: string;
  readonly args: readonly string[];
  readonly env: readonly string[];
  readonly cwd: string;
  readonly netns: string;
}): Record<string, unknown> {
  const caps = [...AGENT_CAPABILITIES];
  return {
    ociVersion: '1.0.2',
    process: {
      terminal: false,
      user: { uid: 0, gid: 0 },
      args: options.args,
      env: options.env,
      cwd: options.cwd,
      // securityContext.capabilities: drop ALL, add NET_ADMIN and NET_RAW; allowPrivilegeEscalation: false.
      capabilities: { bounding: caps, effective: caps, permitted: caps },
      noNewPrivileges: true,
    },
    // securityContext.readOnlyRootFilesystem: true
    root: { path: options.rootfs, readonly: true },
    mounts: [
      { destination: '/proc', type: 'proc', source: 'proc' },
      {
        destination: '/dev',
        type: 'tmpfs',
        source: 'tmpfs',
        options: ['nosuid', 'strictatime', 'mode=755', 'size=65536k'],
      },
      {
        destination: '/dev/pts',
        type: 'devpts',
        source: 'devpts',
        options: ['nosuid', 'noexec', 'newinstance', 'ptmxmode=0666', 'mode=0620'],
      },
      {
        destination: '/dev/shm',
        type: 'tmpfs',
        source: 'shm',
        options: ['nosuid', 'noexec', 'nodev', 'mode=1777', 'size=65536k'],
      },
      { destination: '/dev/mqueue', type: 'mqueue', source: 'mqueue', options: ['nosuid', 'noexec', 'nodev'] },
      { destination: '/sys', type: 'sysfs', source: 'sysfs', options: ['nosuid', 'noexec', 'nodev', 'ro'] },
      // hostPath /run/xtables.lock (FileOrCreate), so iptables shares the lock with the node's other users.
      { destination: XTABLES_LOCK, type: 'bind', source: XTABLES_LOCK, options: ['rbind', 'rw'] },
    ],
    linux: {
      // hostNetwork: the node's network namespace (and, as for any hostNetwork pod, the node's UTS).
      namespaces: [{ type: 'pid' }, { type: 'ipc' }, { type: 'mount' }, { type: 'network', path: options.netns }],
      maskedPaths: [
        '/proc/acpi',
        '/proc/asound',
        '/proc/kcore',
        '/proc/keys',
        '/proc/latency_stats',
        '/proc/timer_list',
        '/proc/timer_stats',
        '/proc/sched_debug',
        '/proc/scsi',
        '/sys/firmware',
      ],
      readonlyPaths: ['/proc/bus', '/proc/fs', '/proc/irq', '/proc/sys', '/proc/sysrq-trigger'],
    },
  };
}

/** One container started from the image with runc; its output is collected. */
export class AgentContainer {
  #output = '';
  readonly #exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;

  private constructor(
    readonly name: string,
    private readonly buildah: Buildah,
    private readonly workingContainer: string,
    private readonly bundle: string,
    readonly rootfs: string,
    child: ChildProcess,
  ) {
    child.stdout?.setEncoding('utf8').on('data', (chunk: string) => {
      this.#output += chunk;
    });
    child.stderr?.setEncoding('utf8').on('data', (chunk: string) => {
      this.#output += chunk;
    });
    this.#exited = new Promise((resolve) => {
      child.on('close', (code, signal) => resolve({ code, signal }));
      child.on('error', (error) => {
        this.#output += `\n[runc did not start: ${error.message}]`;
        resolve({ code: null, signal: null });
      });
    });
  }

  static async start(buildah: Buildah, options: ContainerOptions): Promise<AgentContainer> {
    const config: ImageConfig = await buildah.imageConfig(options.image);
    const args = options.command ?? [...(config.Entrypoint ?? []), ...(config.Cmd ?? [])];
    if (args.length === 0) throw new Error(`${options.image} has neither an entrypoint nor a command`);
    const workingContainer = await buildah.from(options.image, options.name);
    const bundle = join(RUNC_ROOT, 'bundles', options.name);
    try {
      const rootfs = await buildah.mount(workingContainer);
      // FileOrCreate: the host's lock file, created empty when nothing has made it yet.
      closeSync(openSync(XTABLES_LOCK, 'a'));
      mkdirSync(bundle, { recursive: true });
      const spec = ociSpec({
        rootfs,
        args,
        env: mergeEnv(config.Env ?? [], options.env),
        cwd: config.WorkingDir || '/',
        netns: options.netns,
      });
      writeFileSync(join(bundle, 'config.json'), JSON.stringify(spec, null, 2));
      const child = spawn('runc', ['--root', RUNC_ROOT, 'run', '--bundle', bundle, options.name], {
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      return new AgentContainer(options.name, buildah, workingContainer, bundle, rootfs, child);
    } catch (error) {
      await buildah.removeContainer(workingContainer);
      rmSync(bundle, { recursive: true, force: true });
      throw error;
    }
  }

  /** Everything the container printed so far (the agent logs JSON lines to stdout). */
  get output(): string {
    return this.#output;
  }

  /** Resolves when the container's process has exited. */
  exited(): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
    return this.#exited;
  }

  /** The host pid of the container's first process (the agent), from runc's state. */
  async hostPid(): Promise<number> {
    const state = JSON.parse((await must('runc', ['--root', RUNC_ROOT, 'state', this.name])).stdout) as {
      pid: number;
      status: string;
    };
    if (state.status !== 'running') throw new Error(`container ${this.name} is ${state.status}`);
    return state.pid;
  }

  async signal(signal: 'TERM' | 'KILL'): Promise<void> {
    await must('runc', ['--root', RUNC_ROOT, 'kill', this.name, signal]);
  }

  /** Waits for the exit, at most `timeoutMs`; undefined when it is still running then. */
  async waitForExit(timeoutMs: number): Promise<{ code: number | null; signal: NodeJS.Signals | null } | undefined> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<undefined>((resolve) => {
      timer = setTimeout(() => resolve(undefined), timeoutMs);
    });
    try {
      return await Promise.race([this.#exited, timeout]);
    } finally {
      clearTimeout(timer);
    }
  }

  /** Stops (SIGKILL if still running) and removes the container, its working container and bundle. */
  async destroy(): Promise<void> {
    await run('runc', ['--root', RUNC_ROOT, 'kill', this.name, 'KILL']);
    await this.waitForExit(10_000);
    await run('runc', ['--root', RUNC_ROOT, 'delete', '--force', this.name]);
    await this.buildah.removeContainer(this.workingContainer);
    rmSync(this.bundle, { recursive: true, force: true });
  }
}

/** What /proc says about a running process: capabilities, no_new_privs, namespaces, root mount. */
export interface ProcessFacts {
  readonly cmdline: readonly string[];
  readonly capEff: bigint;
  readonly capPrm: bigint;
  readonly capBnd: bigint;
  readonly capInh: bigint;
  readonly capAmb: bigint;
  readonly noNewPrivs: boolean;
  readonly uid: number;
  /** Whether its network namespace is this file's (e.g. /run/netns/<name>). */
  readonly inNetns: (path: string) => boolean;
  /** Mount options of its root filesystem. */
  readonly rootMountOptions: readonly string[];
  /** Whether /run/xtables.lock is mounted in its mount namespace. */
  readonly xtablesLockMounted: boolean;
}

export function processFacts(pid: number): ProcessFacts {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const field = (name: string) => {
    const match = new RegExp(`^${name}:\\s*(.+)$`, 'm').exec(status);
    if (!match?.[1]) throw new Error(`no ${name} in /proc/${pid}/status`);
    return match[1].trim();
  };
  const mounts = readFileSync(`/proc/${pid}/mountinfo`, 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((line) => line.split(' '));
  // The last mount on "/" is the one the process sees.
  const root = mounts.filter((parts) => parts[4] === '/').at(-1);
  const netnsLink = readlinkSync(`/proc/${pid}/ns/net`);
  return {
    cmdline: readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter(Boolean),
    capEff: BigInt(`0x${field('CapEff')}`),
    capPrm: BigInt(`0x${field('CapPrm')}`),
    capBnd: BigInt(`0x${field('CapBnd')}`),
    capInh: BigInt(`0x${field('CapInh')}`),
    capAmb: BigInt(`0x${field('CapAmb')}`),
    noNewPrivs: field('NoNewPrivs') === '1',
    uid: Number(field('Uid').split(/\s+/)[0]),
    inNetns: (path: string) => existsSync(path) && netnsLink === `net:[${statSync(path).ino}]`,
    rootMountOptions: (root?.[5] ?? '').split(','),
    xtablesLockMounted: mounts.some((parts) => parts[4] === XTABLES_LOCK),
  };
}

/** Deletes runc containers of earlier test processes that are gone (`<prefix><pid>-...`). */
export async function sweepStaleContainers(prefix: string): Promise<string[]> {
  const listed = await run('runc', ['--root', RUNC_ROOT, 'list', '--format', 'json']);
  if (listed.exitCode !== 0) return [];
  const removed: string[] = [];
  for (const { id } of (JSON.parse(listed.stdout || 'null') as { id: string }[] | null) ?? []) {
    const pid = id.startsWith(prefix) ? Number.parseInt(id.slice(prefix.length), 10) : Number.NaN;
    if (Number.isInteger(pid) && !processAlive(pid)) {
      await run('runc', ['--root', RUNC_ROOT, 'delete', '--force', id]);
      rmSync(join(RUNC_ROOT, 'bundles', id), { recursive: true, force: true });
      removed.push(id);
    }
  }
  return removed;
}
