// The loop lab: throwaway network namespaces that reproduce the stale-ClusterIP loop. Used by
// `route-controller demo`, by the end-to-end tests and by the benchmarks.

export * from './agent-process.js';
export * from './loop-lab.js';
export * from './netns.js';
