/*
 * What happens to a forwarded packet to a Service CIDR. A module with no imports, so a CLI that
 * only lists the choices (settings, --help) does not load the CIDR code and its parser.
 */
export type BlockAction = 'drop' | 'reject';
export const BLOCK_ACTIONS: readonly BlockAction[] = ['drop', 'reject'];
export const DEFAULT_BLOCK_ACTION: BlockAction = 'drop';
