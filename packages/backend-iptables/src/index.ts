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
  expectedTable,
  type FamilyChainState,
  familyInSync,
  familyObservation,
  familyProblems,
  familyStateFromSave,
  hasAnythingOfOurs,
  holdsFallbackLayout,
  type JumpRule,
  jumpsInPlace,
  jumpTokens,
  type OwnRule,
  observedState,
  otherTable,
  type Placement,
  ruleTokens,
  type TableChainState,
  tableFor,
  tableHasAnythingOfOurs,
} from './chain-state.js';
export { classifyIptablesFailure, type IptablesFailure, missingTable } from './classify-error.js';
export {
  assertValidChainName,
  DEFAULT_LOCK_WAIT_SECONDS,
  FILTER_JUMP_COMMENT,
  FILTER_TABLE,
  FORWARD_CHAIN,
  IPTABLES_CHAIN,
  type IptablesTable,
  JUMP_COMMENT,
  jumpComment,
  OUR_TABLES,
  REJECT_WITH,
  RULE_COMMENT,
  SECURITY_TABLE,
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
export { isIptablesLine } from './events.js';
export { familyReadArgs, readFamily } from './family-read.js';
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
  describePlacements,
  fallbackWarning,
  type Placements,
  probedPlacement,
  SECURITY_EVERYWHERE,
  SECURITY_PLACEMENT,
} from './placement.js';
export {
  type IptablesProbeResult,
  type IptablesVersion,
  MINIMUM_NFT_VERSION,
  parseIptablesVersion,
  probeIptables,
} from './probe.js';
export { iptablesUnreadable, readWhat, unreadableHint, unreadableReasons } from './readability.js';
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
