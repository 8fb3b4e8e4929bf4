export * from './coded-rejection.js';
export * from './contract-suite.js';
export * from './fake-command-runner.js';
export * from './fake-stream-runner.js';
export * from './memory-backend.js';
export * from './recording-command-runner.js';
