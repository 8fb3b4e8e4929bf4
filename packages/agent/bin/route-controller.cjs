#!/usr/bin/env -S node --max-semi-space-size=1 --max-opt=0
// The route-controller executable. Committed, so pnpm can link the bin before the first build; it loads the
// bundle that `pnpm install` builds (build.mjs). CommonJS on purpose: `--version` is answered here before
// Node's ES module loader starts (that alone costs ~15 ms); every other command imports the ESM bundle.
// The V8 flags keep the idle agent small (a smaller young generation; --max-opt=0: the interpreter only,
// no JIT tiers, which an agent that mostly waits never needs and start-up does not pay for either;
// --lite-mode measured the same but makes V8 print a warning on stderr): they apply when this file runs
// as a program (directly, or via pnpm's or npm's bin shim), not as `node <this file>`.
'use strict';

const args = process.argv.slice(2);
if (args.length === 1 && (args[0] === '--version' || args[0] === '-v')) {
  process.stdout.write(`${require('../package.json').version}\n`);
} else {
  import('../dist/bundle/route-controller.mjs');
}
