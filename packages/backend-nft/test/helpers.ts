import { readFileSync, writeFileSync } from 'node:fs';
import {
  type BlockAction,
  type DesiredState,
  desiredState,
  type PlannedCommand,
  parseCidrList,
} from '@route-controller/core';
import { expect } from 'vitest';
import { DEFAULT_LAYOUT, type NftLayout } from '../src/layout.js';
import type { NftDocument } from '../src/nft-json.js';

/** The layout without hit records: what `records: false` (or an nft older than 1.0.6) writes. */
export const PLAIN_LAYOUT: NftLayout = Object.freeze({ ...DEFAULT_LAYOUT, records: undefined });

/** A real `nft -j list table inet route-controller` output captured from nft 1.0.6 (see fixtures/README.md). */
export function fixture(name: string): string {
  return readFileSync(new URL(`./fixtures/${name}.json`, import.meta.url), 'utf8');
}

export function want(cidrs: string, action: BlockAction = 'drop'): DesiredState {
  return desiredState(parseCidrList(cidrs).cidrs, action);
}

/** The JSON document a planned `nft -j <args>` command carries (nft joins its arguments with spaces). */
export function documentOf(command: PlannedCommand | undefined): NftDocument {
  if (!command) throw new Error('no command');
  const flags = command.args.filter((arg) => arg.startsWith('-'));
  return JSON.parse(command.args.slice(flags.length).join(' ')) as NftDocument;
}

export const pretty = (value: unknown): string => `${JSON.stringify(value, null, 2)}\n`;

/**
 * Compares a rendered payload with its committed golden file, as JSON values (so reformatting the
 * file changes nothing). UPDATE_GOLDEN=1 rewrites the file instead; review the diff before committing.
 */
export function expectGolden(name: string, value: unknown): void {
  const url = new URL(`./golden/${name}.json`, import.meta.url);
  if (process.env.UPDATE_GOLDEN === '1') writeFileSync(url, pretty(value));
  expect(value).toStrictEqual(JSON.parse(readFileSync(url, 'utf8')));
}
