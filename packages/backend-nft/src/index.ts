export { classifyNftStderr, firstErrorLine, nftCommandError, nftUnreadable } from './classify-error.js';
export { decideTransaction, elementChanges, type TransactionDecision, type TransactionKind } from './decide.js';
export { isOurTableLine } from './events.js';
export {
  KUBE_PROXY_CHECK_CHAIN,
  KUBE_PROXY_TABLE,
  type KubeProxyDrops,
  type KubeProxyFamilyDrop,
  readKubeProxyDrops,
  unallocatedDropCidrs,
} from './kube-proxy.js';
export {
  DEFAULT_LAYOUT,
  DEFAULT_RECORDS,
  FAMILY_LAYOUTS,
  type FamilyLayout,
  NFT_CHAIN,
  NFT_CHAIN_PRIORITY,
  NFT_FAMILY,
  NFT_TABLE,
  type NftLayout,
  OLD_NFT_CHAIN_PRIORITY,
  OWNER_COMMENT,
  RECORD_SET_SIZE,
  RECORD_TIMEOUT_SECONDS,
  type RecordsLayout,
} from './layout.js';
export {
  classifyMonitorLine,
  describeMonitorLine,
  type MonitorLineTest,
  NFT_MONITOR_ARGS,
  NFTABLES_EVENT_GROUP,
  nftMonitorSpec,
} from './monitor.js';
export { NFT_CAPABILITIES, NftBackend, type NftBackendOptions } from './nft-backend.js';
export type * from './nft-json.js';
export { SUPPORTED_JSON_SCHEMA_VERSION } from './nft-json.js';
export { flagsOf, parseListing, parseOurTable } from './parse.js';
export {
  MIN_NFT_RECORDS_VERSION,
  MIN_NFT_VERSION,
  NFT_CHECK_FLAG,
  type NftProbe,
  probeDocument,
  probeNft,
  probeNftFeatures,
} from './probe.js';
export { parseRecords } from './records.js';
export {
  cidrElement,
  type ElementChange,
  NFT_JSON_FLAG,
  renderElementCommands,
  renderElementTransaction,
  renderRecordRules,
  renderRecordSet,
  renderRemoveTransaction,
  renderReplaceTransaction,
  renderRule,
  renderSet,
  renderWriteCommand,
} from './render.js';
