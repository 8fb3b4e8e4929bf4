#!/usr/bin/env -S node --max-opt=0
// The route-controller executable. Committed, so pnpm can link the bin before the first build; it loads the
// bundle that `pnpm install` builds (build.mjs). CommonJS on purpose: `--version` is answered here before
// Node's ES module loader starts (that alone costs ~15 ms); every other command imports the ESM bundle.
// --max-opt=0 keeps the idle agent ~6 MiB smaller: V8's interpreter only, no compiling tiers, which an agent that mostly waits never needs (start-up measured the same; the bench's
// tricks section weighs it; --lite-mode measured the same but makes V8 print a warning on stderr). It
// applies when this file runs as a program (directly, or via pnpm's or npm's bin shim), not as
// `node <this file>`.
'use strict';

const args = process.argv.slice(2);
if (args.length === 1 && (args[0] === '--version' || args[0] === '-v')) {
  process.stdout.write(`${require('../package.json').version}\n`);
} else {
  import('../dist/bundle/route-controller.mjs');
}
