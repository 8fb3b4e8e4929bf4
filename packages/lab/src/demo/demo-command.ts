import { formatDemoReport } from './demo-report.js';
import { runDemo } from './run-demo.js';

/** Where the demo prints: the agent's CLI passes its own output. */
export interface DemoOutput {
  out(text: string): void;
}

export interface DemoCommandOptions {
  /** The agent's bin, run in the lab node: the caller's own. */
  readonly agentBin: string;
  readonly json: boolean;
  readonly pings: number;
}

/** `pnpm demo`: the loop and its end, in throwaway network namespaces; the exit code. */
export async function demoCommand(options: DemoCommandOptions, output: DemoOutput): Promise<number> {
  const report = await runDemo({
    agentBin: options.agentBin,
    pings: options.pings,
    progress: options.json ? () => {} : (line) => output.out(line),
  });
  output.out(options.json ? JSON.stringify(report, undefined, 2) : formatDemoReport(report));
  return report.ok ? 0 : 1;
}
