import type { Logger, LogLevel } from '@authsec/core';
import { type TextSink, visible } from './output.js';

const ORDER: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40, silent: 99 };
const LABEL: Record<Exclude<LogLevel, 'silent'>, string> = {
  debug: 'debug',
  info: 'info',
  warn: 'warning',
  error: 'error',
};

function isLevel(value: string | undefined): value is LogLevel {
  return value !== undefined && value in ORDER;
}

/**
 * The level of the command's own log lines: `AUTHSEC_LOG_LEVEL` when it is set (and valid), else `warn`,
 * since a command's informational chatter (migrations applied, tenant created) is already its output.
 */
export function cliLogLevel(env: Readonly<Record<string, string | undefined>>): LogLevel {
  const value = env.AUTHSEC_LOG_LEVEL?.trim();
  return isLevel(value) ? value : 'warn';
}

/** A {@link Logger} that writes `authsec: warning: message (key=value, ...)` lines to stderr. */
export function createCliLogger(stderr: TextSink, level: LogLevel): Logger {
  const min = ORDER[level];
  const line =
    (lvl: Exclude<LogLevel, 'silent'>) =>
    (message: string, fields?: Record<string, unknown>): void => {
      if (ORDER[lvl] < min) return;
      const extra = Object.entries(fields ?? {})
        .filter(([, v]) => v !== undefined)
        .map(([k, v]) => `${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`);
      stderr.write(
        `${visible(`authsec: ${LABEL[lvl]}: ${message}${extra.length > 0 ? ` (${extra.join(', ')})` : ''}`)}\n`,
      );
    };
  return { debug: line('debug'), info: line('info'), warn: line('warn'), error: line('error') };
}
