export {
  IPTABLES_MODES,
  type IptablesMode,
  type IptablesTool,
  iptablesBinary,
  isRestoreBinary,
} from './binaries.js';
export { IPTABLES_ACTIONS, IPTABLES_CAPABILITIES } from './capabilities.js';
export {
  absentFamilyState,
  chainMatches,
  type FamilyChainState,
  familyInSync,
  familyObservation,
  familyProblems,
  familyStateFromSave,
  hasAnythingOfOurs,
  type JumpRule,
  jumpsInPlace,
  jumpTokens,
  type OwnRule,
  observedState,
  ruleTokens,
} from './chain-state.js';
export { classifyIptablesFailure, type IptablesFailure } from './classify-error.js';
export {
  assertValidChainName,
  DEFAULT_LOCK_WAIT_SECONDS,
  FILTER_TABLE,
  FORWARD_CHAIN,
  IPTABLES_CHAIN,
  JUMP_COMMENT,
  REJECT_WITH,
  RULE_COMMENT,
} from './constants.js';
export {
  DETECTION_READS,
  type DetectedIptablesFlavour,
  type DetectIptablesFlavourOptions,
  type DetectionBasis,
  type DetectionRead,
  detectIptablesFlavour,
  type IptablesFlavourDetection,
  type IptablesFlavourEvidence,
  KUBELET_HINT_CHAINS,
} from './detect-flavour.js';
export {
  classifyIptablesMonitorLine,
  describeIptablesMonitorLine,
  iptablesMonitorSpec,
  NFT_MONITOR_ARGS,
} from './events.js';
export { IptablesBackend, type IptablesBackendOptions } from './iptables-backend.js';
export {
  countRules,
  findTable,
  hasChain,
  mentionsLegacyTables,
  parseSave,
  quoteToken,
  type SaveCounters,
  type SaveDump,
  type SavedChain,
  type SavedRule,
  type SavedTable,
  targetOf,
  tokenizeRule,
} from './parse-save.js';
export {
  type IptablesProbeResult,
  type IptablesVersion,
  MINIMUM_NFT_VERSION,
  parseIptablesVersion,
  probeIptables,
  probeReadArgs,
} from './probe.js';
export { iptablesUnreadable, unreadableHint, unreadableReasons } from './readability.js';
export {
  describeChange,
  type FamilyTarget,
  type RestoreOptions,
  renderJumpSpec,
  renderRemovalPayload,
  renderRestorePayload,
  renderRuleSpec,
  restoreArgs,
  restoreCommand,
  restoreTimeoutMs,
} from './render.js';
