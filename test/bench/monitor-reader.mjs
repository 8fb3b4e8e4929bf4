// A change event monitor alone, for `pnpm bench`: node reads `nft <args...>` as the agent does
// (ProcessStreamRunner + runChangeStream with the shared monitor's sorting and the nft backend's line test) for <seconds>, then
// prints its own CPU and the child's, in % of one core. Run it inside the namespace under test.
import { readFileSync } from 'node:fs';
import { isOurTableLine } from '@route-controller/backend-nft';
import { classifyMonitorLine } from '@route-controller/backend-nft/monitor';
import { ProcessStreamRunner, runChangeStream } from '@route-controller/core';

const [seconds, ...args] = process.argv.slice(2);
const cpu = (pid) => {
  const stat = readFileSync(`/proc/${pid}/stat`, 'latin1');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100;
};
const classify = classifyMonitorLine(isOurTableLine('route-controller'));
let lines = 0;
let pid;
const controller = new AbortController();
const runner = new ProcessStreamRunner();
const streams = {
  start(request) {
    const stream = runner.start(request);
    void stream.spawned.then((spawned) => {
      pid = spawned;
    });
    return stream;
  },
};
const listener = {
  ready() {},
  change() {
    lines += 1;
  },
  other() {
    lines += 1;
  },
  lost() {},
  diagnostic() {},
};
const running = runChangeStream(streams, { file: 'nft', args, classify }, listener, controller.signal);
await new Promise((resolve) => setTimeout(resolve, 300));
const start = { self: process.cpuUsage(), child: cpu(pid), at: performance.now(), lines };
process.stdout.write('ready\n');
setTimeout(async () => {
  const elapsed = (performance.now() - start.at) / 1000;
  const self = process.cpuUsage(start.self);
  const result = {
    linesPerSecond: (lines - start.lines) / elapsed,
    nodePercent: ((self.user + self.system) / 1e6 / elapsed) * 100,
    monitorPercent: ((cpu(pid) - start.child) / elapsed) * 100,
  };
  controller.abort();
  await running;
  process.stdout.write(`${JSON.stringify(result)}\n`);
}, Number(seconds) * 1000);
