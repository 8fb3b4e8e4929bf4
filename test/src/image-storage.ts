import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { must, type ProcessResult, processAlive, type RunOptions, run } from './image-exec.js';

/** The image's configuration, as `buildah inspect` reports it (OCI image config). */
export interface ImageConfig {
  readonly User?: string;
  readonly Env?: readonly string[];
  readonly Entrypoint?: readonly string[] | null;
  readonly Cmd?: readonly string[] | null;
  readonly WorkingDir?: string;
  readonly ExposedPorts?: Readonly<Record<string, unknown>>;
  readonly Labels?: Readonly<Record<string, string>> | null;
}

/**
 * buildah on a storage of our own (vfs driver: no overlay or fuse needed, works in any container or VM
 * as root), so the test never touches the machine's default container storage. The stand-in base stays
 * there between runs; everything else the test makes, it removes.
 */
export class Buildah {
  readonly root: string;
  readonly runroot: string;

  /** Nothing is created until the first command: a skipped test (not root) must not touch the disk. */
  constructor(cacheDir: string) {
    this.root = join(cacheDir, 'containers/storage');
    this.runroot = '/run/route-controller-test/containers';
  }

  private global(args: readonly string[]): string[] {
    mkdirSync(this.root, { recursive: true });
    mkdirSync(this.runroot, { recursive: true });
    return ['--root', this.root, '--runroot', this.runroot, '--storage-driver', 'vfs', ...args];
  }

  run(args: readonly string[], options: RunOptions = {}): Promise<ProcessResult> {
    return run('buildah', this.global(args), { timeoutMs: 300_000, ...options });
  }

  must(args: readonly string[], options: RunOptions = {}): Promise<ProcessResult> {
    return must('buildah', this.global(args), { timeoutMs: 300_000, ...options });
  }

  async imageExists(reference: string): Promise<boolean> {
    return (await this.run(['inspect', '--type', 'image', reference])).exitCode === 0;
  }

  async imageConfig(reference: string): Promise<ImageConfig> {
    const inspected = JSON.parse((await this.must(['inspect', '--type', 'image', reference])).stdout) as {
      OCIv1: { config?: ImageConfig };
    };
    return inspected.OCIv1.config ?? {};
  }

  /** A working container on the image (never pulling); returns its id. */
  async from(reference: string, name: string): Promise<string> {
    return (await this.must(['from', '--pull=never', '--name', name, reference])).stdout.trim();
  }

  async fromScratch(name: string): Promise<string> {
    return (await this.must(['from', '--name', name, 'scratch'])).stdout.trim();
  }

  /** Mounts a working container's root filesystem and returns where (with vfs, a plain directory). */
  async mount(container: string): Promise<string> {
    return (await this.must(['mount', container])).stdout.trim();
  }

  async removeContainer(container: string): Promise<void> {
    await this.run(['rm', container]);
  }

  async removeImage(reference: string): Promise<void> {
    await this.run(['rmi', '--force', reference]);
  }

  /**
   * Removes what an interrupted earlier run left: working containers (this storage is the image test's
   * alone; a killed build leaves its stages' containers) and images tagged by test processes that are
   * gone. The stand-in base stays.
   */
  async sweepStale(tagPrefix: string): Promise<string[]> {
    const removed: string[] = [];
    const containers = JSON.parse((await this.must(['containers', '--all', '--json'])).stdout || 'null') as
      | { id: string; containername: string }[]
      | null;
    for (const container of containers ?? []) {
      await this.removeContainer(container.id);
      removed.push(container.containername);
    }
    const images = JSON.parse((await this.must(['images', '--json'])).stdout || 'null') as
      | { names: string[] | null }[]
      | null;
    for (const name of (images ?? []).flatMap((image) => image.names ?? [])) {
      const pid = name.startsWith(tagPrefix) ? Number(name.slice(tagPrefix.length)) : Number.NaN;
      if (Number.isInteger(pid) && !processAlive(pid)) {
        await this.removeImage(name);
        removed.push(name);
      }
    }
    await this.pruneDangling();
    return removed;
  }

  /** Removes images no tag points at any more (a multi-stage build's leftovers), never tagged ones. */
  async pruneDangling(): Promise<void> {
    await this.run(['rmi', '--prune']);
  }
}
