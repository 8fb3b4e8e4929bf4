import { type DestinationStream, type Logger, pino } from 'pino';
import type { LogLevel } from '../config/settings.js';

export type { Logger };

/**
 * The one root logger: JSON lines on stdout. Components take `logger.child({ component })`;
 * errors go under `err` so pino serialises their code, hint and cause.
 */
export function createLogger(level: LogLevel, destination: DestinationStream | 1 | 2 = 1): Logger {
  return pino(
    {
      name: 'route-controller',
      level,
      base: { pid: process.pid },
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
    },
    typeof destination === 'number' ? pino.destination({ dest: destination, sync: true }) : destination,
  );
}
