// `pnpm demo` (root, from a source checkout): the stale-ClusterIP loop and its end, with every backend
// this machine supports, in throwaway network namespaces. The demo lives in the private lab package;
// this script hands it the checkout's agent. The published agent and the image carry none of it.
import { createRequire } from 'node:module';
import { dirname, resolve } from 'node:path';
import { parseArgs } from 'node:util';

const USAGE = `Usage: pnpm demo [--json] [--pings <count>]

Shows the loop and its end (root): builds a lab in throwaway network namespaces (rcdemo-*), loops
packets to a stale ClusterIP, then runs the agent there with every backend this machine supports,
and removes everything it made.

Options:
  --json             print one JSON object instead of the report
  --pings <count>    pings per measurement, 1 to 1000 (default: 10)
  -h, --help         print this help

Exit codes: 0 the loop ended with every backend, 1 it did not (or the demo failed), 2 a bad option.`;

function usageError(message) {
  process.stderr.write(`error ERR_RC_USAGE: ${message}. Run pnpm demo --help for the usage.\n`);
  process.exit(2);
}

let values;
try {
  ({ values } = parseArgs({
    options: {
      json: { type: 'boolean', default: false },
      pings: { type: 'string', default: '10' },
      help: { type: 'boolean', short: 'h', default: false },
    },
  }));
} catch (error) {
  usageError(error.message);
}
if (values.help) {
  process.stdout.write(`${USAGE}\n`);
  process.exit(0);
}
const pings = Number(values.pings);
if (!/^\d+$/.test(values.pings.trim()) || pings < 1 || pings > 1000) {
  usageError(`--pings ${JSON.stringify(values.pings)} is invalid: give a whole number from 1 to 1000`);
}

const require = createRequire(import.meta.url);
const manifest = require.resolve('@route-controller/agent/package.json');
const agentBin = resolve(dirname(manifest), require(manifest).bin['route-controller']);
const { demoCommand } = await import('@route-controller/lab/demo');
try {
  process.exitCode = await demoCommand(
    { agentBin, json: values.json, pings },
    { out: (text) => process.stdout.write(text.endsWith('\n') ? text : `${text}\n`) },
  );
} catch (error) {
  // Coded errors (not root, a missing tool) as the agent's CLI prints them: code, message, hint.
  const hint = error?.hint ? ` ${error.hint}` : '';
  process.stderr.write(`error ${error?.code ?? 'ERR_RC_DEMO'}: ${error?.message ?? String(error)}.${hint}\n`);
  process.exitCode = 1;
}
