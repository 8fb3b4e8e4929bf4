import type { CommandRunner, DiscoveryChain, FirewallBackend } from '@route-controller/core';
import type { FlavourDetector, Selection } from './backends/backend-selector.js';
import type { BackendSet } from './backends/backend-set.js';
import type { AgentConfig } from './config/config.js';
import type { InjectionToken } from './di.js';
import type { NodeNetworkReader } from './node/node-network.js';
import type { Logger } from './observability/logger.js';

/** Every injection token of the agent, in one place. */
export const TOKENS = {
  Config: Symbol('AgentConfig') as InjectionToken<AgentConfig>,
  Logger: Symbol('Logger') as InjectionToken<Logger>,
  CommandRunner: Symbol('CommandRunner') as InjectionToken<CommandRunner>,
  Backends: Symbol('BackendSet') as InjectionToken<BackendSet>,
  FlavourDetector: Symbol('FlavourDetector') as InjectionToken<FlavourDetector>,
  /** The outcome of backend selection; registered once it has run. */
  Selection: Symbol('Selection') as InjectionToken<Selection>,
  /** The backend chosen at start; registered once selection has run. */
  Backend: Symbol('FirewallBackend') as InjectionToken<FirewallBackend>,
  Discovery: Symbol('DiscoveryChain') as InjectionToken<DiscoveryChain>,
  NodeNetwork: Symbol('NodeNetworkReader') as InjectionToken<NodeNetworkReader>,
} as const;
