// `route-controller demo`, loaded by the agent's CLI from a source checkout only.

export { type DemoCommandOptions, type DemoOutput, demoCommand } from './demo-command.js';
export { type DemoReport, type DemoRun, type Families, formatDemoReport } from './demo-report.js';
export { BACKEND_NAMES, DEMO_PREFIX, type DemoOptions, runDemo } from './run-demo.js';
