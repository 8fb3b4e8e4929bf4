import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { AGENT_BIN } from '../src/agent-bin.js';
import { timed } from './startup.js';
import { type Summary, summarise } from './stats.js';

const run = promisify(execFile);

export interface CliStartResult {
  readonly version: Summary;
  readonly node: Summary;
  readonly ratio: number;
}

/**
 * `route-controller --version` (the bin run as a program, as a user or the image does, shebang
 * flags included) next to `node -e 0`, both spawned directly from here, interleaved.
 */
export async function measureCliStart(runs: number): Promise<CliStartResult> {
  const version: number[] = [];
  const node: number[] = [];
  for (let round = -1; round < runs; round += 1) {
    const v = await timed(() => run(AGENT_BIN, ['--version']));
    const n = await timed(() => run(process.execPath, ['-e', '0']));
    if (round < 0) continue;
    version.push(v);
    node.push(n);
  }
  const [v, n] = [summarise(version), summarise(node)];
  return { version: v, node: n, ratio: v.median / n.median };
}
