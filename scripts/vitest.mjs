#!/usr/bin/env node
// Runs vitest with the given arguments. Under CI with output to a file (a CI log), without ANSI
// colours: vitest reads NO_COLOR when it starts, before its config could set it.
import { spawn } from 'node:child_process';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';

const inCi = process.env.CI === 'true' || process.env.CI === '1';
const env = { ...process.env };
if (inCi && !process.stdout.isTTY) env.NO_COLOR ??= '1';
// The package's own bin, found through its manifest (its exports do not list the bin file).
const manifest = createRequire(import.meta.url).resolve('vitest/package.json');
const bin = join(dirname(manifest), 'vitest.mjs');
const child = spawn(process.execPath, [bin, ...process.argv.slice(2)], { stdio: 'inherit', env });
for (const signal of ['SIGINT', 'SIGTERM']) process.on(signal, () => child.kill(signal));
child.on('exit', (code, signal) => {
  process.exitCode = code ?? (signal ? 1 : 0);
});
