import type { Availability, ObservedState } from '@route-controller/core';
import { backendOf } from '../backends/backend-set.js';
import { BACKEND_NAMES, type BackendName } from '../config/settings.js';
import type { Toolbox } from '../container.js';
import { describeError, json, type Output } from './output.js';

interface BackendStatus {
  readonly backend: BackendName;
  readonly available: boolean;
  readonly reason: string;
  readonly installed?: {
    readonly present: boolean;
    readonly action: string | null;
    readonly ipv4: readonly string[];
    readonly ipv6: readonly string[];
    readonly counters: {
      readonly ipv4?: { packets: number; bytes: number };
      readonly ipv6?: { packets: number; bytes: number };
    };
    readonly problems: readonly string[];
  };
  readonly error?: string;
}

/** `route-controller status`: what route-controller has installed on this node now, per backend. */
export async function statusCommand(toolbox: Toolbox, options: { json: boolean }, output: Output): Promise<number> {
  const statuses: BackendStatus[] = [];
  for (const name of BACKEND_NAMES) {
    const availability: Availability = await toolbox.selector.probe(name);
    if (!availability.available) {
      statuses.push({ backend: name, available: false, reason: availability.reason });
      continue;
    }
    try {
      const observed = await backendOf(toolbox.backends, name).observe();
      statuses.push({ backend: name, available: true, reason: availability.reason, installed: summarise(observed) });
    } catch (error) {
      statuses.push({ backend: name, available: true, reason: availability.reason, error: describeError(error) });
    }
  }
  if (options.json) {
    output.out(json({ backends: statuses }));
    return statuses.some((s) => s.error) ? 1 : 0;
  }
  const lines: string[] = [];
  for (const status of statuses) {
    if (!status.available) {
      lines.push(`${status.backend}: not usable here (${status.reason})`);
    } else if (status.error) {
      lines.push(`${status.backend}: could not read: ${status.error}`);
    } else if (!status.installed?.present) {
      lines.push(`${status.backend}: nothing installed`);
    } else {
      const i = status.installed;
      lines.push(
        `${status.backend}: ${i.action ?? 'mixed action'} forwarded packets to ${[...i.ipv4, ...i.ipv6].join(', ') || 'no CIDRs'}`,
      );
      for (const family of ['ipv4', 'ipv6'] as const) {
        const c = i.counters[family];
        if (c) lines.push(`  ${family}: ${c.packets} packets, ${c.bytes} bytes blocked`);
      }
      for (const problem of i.problems) lines.push(`  drift: ${problem}`);
    }
  }
  output.out(lines.join('\n'));
  return statuses.some((s) => s.error) ? 1 : 0;
}

function summarise(observed: ObservedState): NonNullable<BackendStatus['installed']> {
  return {
    present: observed.present,
    action: observed.action,
    ipv4: observed.ipv4.cidrs.map((c) => c.text),
    ipv6: observed.ipv6.cidrs.map((c) => c.text),
    counters: {
      ...(observed.ipv4.counters ? { ipv4: observed.ipv4.counters } : {}),
      ...(observed.ipv6.counters ? { ipv6: observed.ipv6.counters } : {}),
    },
    problems: observed.problems,
  };
}
