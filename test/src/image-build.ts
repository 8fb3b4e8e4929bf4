import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  dockerfileBaseImages,
  ensureStandInBase,
  imageCacheDir,
  type NodeBaseTag,
  parseNodeBaseTag,
} from './image-base.js';
import { must, run } from './image-exec.js';
import type { Buildah } from './image-storage.js';

/** Where the image is built: a Docker engine with the real base images, or buildah with the stand-in. */
export type ImageEngine = 'docker' | 'buildah';

export async function dockerEngineAvailable(): Promise<boolean> {
  try {
    return (await run('docker', ['info'], { timeoutMs: 20_000 })).exitCode === 0;
  } catch {
    return false; // no docker client at all
  }
}

export interface BuiltImage {
  /** The image's name in our buildah storage, whichever engine built it. */
  readonly reference: string;
  readonly engine: ImageEngine;
  readonly base: NodeBaseTag;
  /** Whether the base (the stand-in) was already in the cache. */
  readonly baseCached: boolean;
  readonly baseSeconds: number;
  readonly buildSeconds: number;
}

/** The one base image the repository's Dockerfile builds on. */
export function dockerfileBase(repoRoot: string): NodeBaseTag {
  const images = dockerfileBaseImages(readFileSync(join(repoRoot, 'Dockerfile'), 'utf8'));
  if (images.length !== 1)
    throw new Error(`the Dockerfile should build on one base image, it names ${images.join(', ')}`);
  return parseNodeBaseTag(images[0] ?? '');
}

/**
 * Volumes that let the build's npm and pnpm trust what this machine trusts, when the machine reaches the
 * registry through a TLS-inspecting proxy (NODE_EXTRA_CA_CERTS set): the CA bundle and an npmrc naming
 * it, mounted for RUN steps only. Elsewhere: none.
 */
function registryTrustVolumes(cacheDir: string): string[] {
  const bundle = process.env.NODE_EXTRA_CA_CERTS;
  if (!bundle || !existsSync(bundle)) return [];
  const inside = '/usr/local/etc/route-controller-build-ca.crt';
  const npmrc = join(cacheDir, 'build-npmrc');
  writeFileSync(npmrc, `cafile=${inside}\n`);
  return ['--volume', `${bundle}:${inside}:ro`, '--volume', `${npmrc}:/usr/local/etc/npmrc:ro`];
}

/** Builds the repository's Dockerfile and leaves the image in `buildah`'s storage under `tag`. */
export async function buildImage(options: {
  readonly repoRoot: string;
  readonly buildah: Buildah;
  readonly engine: ImageEngine;
  readonly tag: string;
  readonly log: (line: string) => void;
}): Promise<BuiltImage> {
  const { repoRoot, buildah, engine, tag, log } = options;
  const base = dockerfileBase(repoRoot);
  const cacheDir = imageCacheDir();
  const logDir = join(cacheDir, 'logs');
  mkdirSync(logDir, { recursive: true });
  const logFile = join(logDir, 'build.log');

  const baseStart = performance.now();
  let baseCached = true;
  if (engine === 'buildah') {
    baseCached = (await ensureStandInBase(buildah, base, log)).cached;
    log(`base ${base.reference}: ${baseCached ? 'stand-in from the cache' : 'stand-in built'}`);
  }
  const baseSeconds = (performance.now() - baseStart) / 1000;

  const buildStart = performance.now();
  let output = '';
  const collect = (chunk: string) => {
    output += chunk;
  };
  try {
    if (engine === 'buildah') {
      await buildah.must(
        [
          'build',
          '--isolation',
          'chroot',
          '--pull=never',
          '--layers=false',
          ...registryTrustVolumes(cacheDir),
          '--file',
          join(repoRoot, 'Dockerfile'),
          '--tag',
          tag,
          repoRoot,
        ],
        { timeoutMs: 1_500_000, onOutput: collect },
      );
    } else {
      await must('docker', ['build', '--pull', '--file', join(repoRoot, 'Dockerfile'), '--tag', tag, repoRoot], {
        timeoutMs: 1_500_000,
        onOutput: collect,
      });
      // Run it exactly as the buildah-built image is run: from our storage, with runc.
      try {
        await buildah.must(['pull', `docker-daemon:${tag}`], { timeoutMs: 600_000 });
      } finally {
        await run('docker', ['rmi', '--force', tag]);
      }
    }
  } finally {
    writeFileSync(logFile, output);
  }
  const buildSeconds = (performance.now() - buildStart) / 1000;
  log(`built ${tag} with ${engine} in ${buildSeconds.toFixed(0)} s (log: ${logFile})`);
  return { reference: tag, engine, base, baseCached, baseSeconds, buildSeconds };
}
