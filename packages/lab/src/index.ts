// The loop lab: throwaway network namespaces that reproduce the stale-ClusterIP loop, and the real
// agent run inside them. Used by `pnpm demo` (./demo, via scripts/demo.mjs), the end-to-end tests and the
// benchmarks; never published, never in the image.

export * from './agent-process.js';
export * from './loop-lab.js';
export * from './netns.js';
export * from './processes.js';
