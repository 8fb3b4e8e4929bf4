// `pnpm demo` (scripts/demo.mjs at the repository's root), from a source checkout only.

export { type DemoCommandOptions, type DemoOutput, demoCommand } from './demo-command.js';
export { type DemoReport, type DemoRun, type Dialled, type Families, formatDemoReport } from './demo-report.js';
export { BACKEND_NAMES, DEMO_PREFIX, type DemoOptions, runDemo, SECOND_POD_PINGS } from './run-demo.js';
