import { execFileSync } from 'node:child_process';
import { describe, it } from 'vitest';
import type { ImageEngine } from './image-build.js';
import { onPath } from './image-exec.js';
import { IN_CI, kernelTestBlocker } from './prerequisites.js';

/** Programs the image test needs besides the loop lab's, and the Debian package of each. */
const COMMON: Readonly<Record<string, string>> = { buildah: 'buildah', runc: 'runc', tar: 'tar', npm: 'npm' };
const STAND_IN: Readonly<Record<string, string>> = { debootstrap: 'debootstrap' };

function dockerEngine(): boolean {
  if (!onPath('docker')) return false;
  try {
    execFileSync('docker', ['info'], { stdio: 'ignore', timeout: 20_000 });
    return true;
  } catch {
    return false;
  }
}

export interface ImageTestPlan {
  readonly engine: ImageEngine;
  readonly blocker?: string;
}

/**
 * How the image test can run here: with a Docker engine (real base images) where `docker info`
 * succeeds, else with buildah and a stand-in base; or why it cannot.
 */
export function imageTestPlan(): ImageTestPlan {
  const engine: ImageEngine = dockerEngine() ? 'docker' : 'buildah';
  const kernel = kernelTestBlocker();
  if (kernel) return { engine, blocker: kernel };
  const needed = { ...COMMON, ...(engine === 'buildah' ? STAND_IN : {}) };
  const missing = Object.keys(needed).filter((name) => !onPath(name));
  if (missing.length > 0) {
    const packages = [...new Set(missing.map((name) => needed[name]))].join(' ');
    return { engine, blocker: `missing ${missing.join(', ')} (apt-get install ${packages})` };
  }
  return { engine };
}

/**
 * A describe block for the image test. Where it cannot run it skips with the reason in the test name;
 * under CI=true it fails instead.
 */
export function describeImage(name: string, body: (engine: ImageEngine) => void): void {
  const plan = imageTestPlan();
  if (!plan.blocker) {
    describe(`${name} [${plan.engine}]`, () => body(plan.engine));
  } else if (IN_CI) {
    describe(name, () => {
      it('has its prerequisites', () => {
        throw new Error(`the image test cannot run under CI=true: ${plan.blocker}`);
      });
    });
  } else {
    console.warn(`[route-controller tests] skipping "${name}": ${plan.blocker}`);
    describe.skip(`${name} [skipped: ${plan.blocker}]`, () => body(plan.engine));
  }
}
