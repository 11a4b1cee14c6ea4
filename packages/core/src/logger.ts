import type { Logger } from './types.js';

/** Log levels, least severe first. */
export type LogLevel = 'debug' | 'info' | 'warn' | 'error' | 'silent';

const ORDER: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40, silent: 99 };

/** Options of {@link createLogger}. */
export interface LoggerOptions {
  /** Lowest level written. Default `'info'`. */
  readonly level?: LogLevel;
  /** Where JSON lines go. Default `process.stderr`: under stdio, stdout carries only MCP messages. */
  readonly stream?: { write(chunk: string): unknown };
  /** Name put on every line. Default `'authsec'`. */
  readonly name?: string;
}

/**
 * A JSON-lines logger on stderr. Callers must never pass tokens, secret values or claim sets as fields: the
 * logger cannot tell them apart from harmless strings.
 */
export function createLogger(options: LoggerOptions = {}): Logger {
  const min = ORDER[options.level ?? 'info'];
  const stream = options.stream ?? process.stderr;
  const name = options.name ?? 'authsec';
  const line = (level: LogLevel) => (message: string, fields?: Record<string, unknown>) => {
    if (ORDER[level] < min) return;
    stream.write(
      `${JSON.stringify({ time: new Date().toISOString(), level, name, msg: message, ...fields })}\n`,
    );
  };
  return { debug: line('debug'), info: line('info'), warn: line('warn'), error: line('error') };
}

/** A logger that drops everything. */
export const silentLogger: Logger = createLogger({ level: 'silent' });
