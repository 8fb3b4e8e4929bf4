import { formatDemoReport } from '../demo/demo-report.js';
import { runDemo } from '../demo/run-demo.js';
import { json, type Output } from './output.js';

/** `route-controller demo`: the loop and its end, in throwaway network namespaces. */
export async function demoCommand(options: { json: boolean; pings: number }, output: Output): Promise<number> {
  const report = await runDemo({
    pings: options.pings,
    progress: options.json ? () => {} : (line) => output.out(line),
  });
  output.out(options.json ? json(report) : formatDemoReport(report));
  return report.ok ? 0 : 1;
}
