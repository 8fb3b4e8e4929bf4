export * from './cidr.js';
export * from './command-runner.js';
export * from './desired-state.js';
export * from './discovery.js';
export * from './env-source.js';
export * from './errors.js';
export * from './firewall-backend.js';
export * from './service-cidrs.js';
