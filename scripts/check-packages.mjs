#!/usr/bin/env node
// Checks every published workspace package the way a consumer meets it: publint (the manifest,
// `exports`, `files`, a packed tarball) and @arethetypeswrong/cli (the types resolve for ESM
// consumers; CommonJS and node10 resolution are out of scope for ESM-only packages).
import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

const root = new URL('..', import.meta.url).pathname;
const published = readdirSync(join(root, 'packages'))
  .map((dir) => join(root, 'packages', dir))
  .filter((dir) => !JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')).private);

let failed = 0;
for (const dir of published) {
  for (const [tool, args] of [
    ['publint', ['--strict', '--pack', 'pnpm', dir]],
    ['attw', ['--pack', dir, '--profile', 'esm-only', '--format', 'ascii']],
  ]) {
    const run = spawnSync('pnpm', ['exec', tool, ...args], { cwd: root, encoding: 'utf8' });
    if (run.status !== 0) {
      failed += 1;
      process.stderr.write(`${tool} ${dir}: failed\n${run.stdout}${run.stderr}\n`);
    }
  }
}
process.stdout.write(
  `checked ${published.length} published packages with publint and attw: ${failed ? `${failed} failed` : 'all good'}\n`,
);
process.exitCode = failed ? 1 : 0;
