import type { ServiceCidrSource, SourceReading } from './discovery.js';
import { formatServiceCidrs, type NormalizedCidrs, parseCidrList } from './service-cidrs.js';

export const SERVICE_CIDRS_VARIABLE = 'SERVICE_CIDRS';

/**
 * The SERVICE_CIDRS setting: a comma-separated list. Parsed when constructed, so a bad value
 * fails at start-up, before anything is installed.
 */
export class EnvServiceCidrSource implements ServiceCidrSource {
  readonly name = 'env';
  readonly #value: string | undefined;
  readonly #parsed: NormalizedCidrs | undefined;

  constructor(value: string | undefined) {
    this.#value = value;
    this.#parsed = value === undefined ? undefined : parseCidrList(value);
  }

  /** True when the variable is set and lists at least one CIDR. */
  get configured(): boolean {
    return this.#parsed !== undefined && this.#parsed.cidrs.ipv4.length + this.#parsed.cidrs.ipv6.length > 0;
  }

  read(): Promise<SourceReading> {
    if (this.#parsed === undefined) {
      return Promise.resolve({ kind: 'none', detail: `${SERVICE_CIDRS_VARIABLE} is not set` });
    }
    if (!this.configured) {
      return Promise.resolve({
        kind: 'none',
        detail: `${SERVICE_CIDRS_VARIABLE} is set to ${JSON.stringify(this.#value)} but lists no CIDRs`,
      });
    }
    return Promise.resolve({
      kind: 'cidrs',
      cidrs: this.#parsed.cidrs,
      detail: `${SERVICE_CIDRS_VARIABLE}=${formatServiceCidrs(this.#parsed.cidrs)}`,
      notes: this.#parsed.notes,
    });
  }
}
