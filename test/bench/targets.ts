/**
 * A figure next to its target: "meets" or "misses by ..." (how much, in the figure's own unit and as
 * a share of the target), so a missed target is never just a number in a table.
 */
export interface Target {
  /** At most this much (a ratio, MiB, ms, % of a core, ...). */
  readonly atMost: number;
  /** How the figure and the target are written: "×", " MiB", " ms". */
  readonly unit: string;
  readonly digits?: number;
}

export function formatFigure(value: number, target: Target): string {
  return `${value.toFixed(target.digits ?? 2)}${target.unit}`;
}

export function verdict(value: number, target: Target): string {
  const limit = `≤ ${formatFigure(target.atMost, target)}`;
  if (value <= target.atMost) return `meets (${limit})`;
  const over = value - target.atMost;
  return `**misses** (${limit}) by ${formatFigure(over, target)} (${((over / target.atMost) * 100).toFixed(0)}%)`;
}
