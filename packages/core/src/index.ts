/*
 * The public API of @route-controller/core, named one by one: adding a name here is a decision,
 * and test/integration/packaging.test.ts pins the list. Helpers the modules share among
 * themselves stay unexported.
 */

// What is desired: CIDRs, per family, and the action.
export type { BlockAction } from './block-action.js';
export { BLOCK_ACTIONS } from './block-action.js';
export type { ChangeLineKind, ChangeStreamSpec } from './change-stream.js';
export { runChangeStream, waitForNetlinkSubscription } from './change-stream.js';
export type { Cidr, IpFamily, ParsedCidr } from './cidr.js';
export { cidrContains, cidrContainsAddress, compareCidrs, IP_FAMILIES, MAX_PREFIX, parseCidr } from './cidr.js';
export type { StderrRule } from './classify-stderr.js';
export { classifyStderr, firstLine, PERMISSION_DENIED } from './classify-stderr.js';
// Running the firewall tools.
export type {
  CommandRequest,
  CommandResult,
  CommandRunner,
  ProcessCommandRunnerOptions,
} from './command-runner.js';
export {
  commandNotFound,
  DEFAULT_COMMAND_TIMEOUT_MS,
  formatCommand,
  PrefixedCommandRunner,
  ProcessCommandRunner,
  runChecked,
} from './command-runner.js';
export type { DesiredState } from './desired-state.js';
export {
  describeDesiredState,
  desiredState,
  isEmptyDesiredState,
  MAX_CIDRS_PER_FAMILY,
  sameDesiredState,
} from './desired-state.js';

// Where the CIDRs come from.
export type { Discovery, ServiceCidrSource, SkippedSource, SourceReading } from './discovery.js';
export { DiscoveryChain, LazySource } from './discovery.js';
export { EnvServiceCidrSource } from './env-source.js';
// Errors: a stable code, a hint and a cause.
export type { ErrorCode, RouteControllerErrorOptions } from './errors.js';
export {
  ErrorCodes,
  errorMessage,
  isRouteControllerError,
  RouteControllerError,
  toRouteControllerError,
} from './errors.js';
// The backend contract.
export type {
  ApplyResult,
  Availability,
  BackendCapabilities,
  ChangeListener,
  ChangeStreamEnd,
  CleanupResult,
  DropCounters,
  FamilyObservation,
  FirewallBackend,
  ObservedState,
  Plan,
  PlannedCommand,
  ProbeCheck,
  WriteOptions,
} from './firewall-backend.js';
export { assertEnforceable, isInSync, NOTHING_OBSERVED } from './firewall-backend.js';
export type { HitRecord, HitRecords, RecordSetStatus } from './hit-records.js';
export { NO_HIT_RECORDS, readHitRecords } from './hit-records.js';
// Small utilities the agent shares with core.
export { once } from './once.js';
export { SerialQueue } from './serial-queue.js';
export type { NormalizationNote, NormalizedCidrs, ServiceCidrs } from './service-cidrs.js';
export {
  cidrsOf,
  cidrTexts,
  describeNote,
  formatServiceCidrs,
  NO_SERVICE_CIDRS,
  normalizeCidrs,
  parseCidrList,
  sameCidrList,
  sameServiceCidrs,
} from './service-cidrs.js';
export type {
  LineStream,
  ProcessStreamRunnerOptions,
  StreamExit,
  StreamRequest,
  StreamRunner,
} from './stream-runner.js';
export { PrefixedStreamRunner, ProcessStreamRunner } from './stream-runner.js';
export type { Version } from './version.js';
export { compareVersions, formatVersion, parseVersion, versionAtLeast } from './version.js';
