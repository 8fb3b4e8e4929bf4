export { Agent } from './agent.js';
export { type AgentConfig, loadConfig } from './config/config.js';
export { BACKEND_CHOICES, type BackendName, SETTINGS } from './config/settings.js';
export { composeAgent, createAgentContainer } from './container.js';
export { VERSION } from './version.js';
