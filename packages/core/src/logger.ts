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

/** A pino-style logger (pino, `fastify.log`): the fields first, then the message. */
export interface PinoStyleLogger {
  debug(fields: object, message?: string): void;
  info(fields: object, message?: string): void;
  warn(fields: object, message?: string): void;
  error(fields: object, message?: string): void;
}

/** Nest's `Logger` (or any `LoggerService`): the message, then optional parameters (Nest's context). */
export interface NestStyleLogger {
  log(message: unknown, ...optionalParams: unknown[]): unknown;
  warn(message: unknown, ...optionalParams: unknown[]): unknown;
  error(message: unknown, ...optionalParams: unknown[]): unknown;
  debug?(message: unknown, ...optionalParams: unknown[]): unknown;
}

function isNestStyle(logger: PinoStyleLogger | NestStyleLogger): logger is NestStyleLogger {
  return (
    typeof (logger as NestStyleLogger).log === 'function' &&
    typeof (logger as PinoStyleLogger).info !== 'function'
  );
}

/** `message` with its fields as one JSON suffix, for loggers that take a single message string. */
function withFields(message: string, fields: Record<string, unknown> | undefined): string {
  if (fields === undefined || Object.keys(fields).length === 0) return message;
  try {
    return `${message} ${JSON.stringify(fields)}`;
  } catch {
    return message;
  }
}

/**
 * The application's logger as an AuthSec {@link Logger}: a pino-style logger (`pino()`, `fastify.log`) is called
 * as `logger.info(fields, message)`; Nest's `Logger` (told apart by having `log` and no `info`) as
 * `logger.log(message + fields as JSON)`, with `context` as Nest's context when given. The fields AuthSec
 * passes never hold a token, secret or claim set, and pass through unchanged.
 */
export function applicationLogger(
  logger: PinoStyleLogger | NestStyleLogger,
  options: { readonly context?: string } = {},
): Logger {
  if (typeof logger !== 'object' || logger === null)
    throw new TypeError('applicationLogger: a pino-style or Nest logger is required');
  if (isNestStyle(logger)) {
    const context = options.context === undefined ? [] : [options.context];
    const call =
      (method: 'log' | 'warn' | 'error' | 'debug') => (message: string, fields?: Record<string, unknown>) => {
        (logger[method] ?? logger.log).call(logger, withFields(message, fields), ...context);
      };
    return { debug: call('debug'), info: call('log'), warn: call('warn'), error: call('error') };
  }
  const call = (method: keyof PinoStyleLogger) => (message: string, fields?: Record<string, unknown>) => {
    logger[method](
      options.context === undefined ? { ...fields } : { context: options.context, ...fields },
      message,
    );
  };
  return { debug: call('debug'), info: call('info'), warn: call('warn'), error: call('error') };
}

// The default loggers of engines, by the function that points them elsewhere.
const redirects = new WeakMap<Logger, (target: Logger) => void>();

/**
 * An engine's logger when none was given: JSON lines on stderr ({@link createLogger}) until
 * {@link useApplicationLogger} points it at the application's logger. Everything the engine built (verifier,
 * key sets, registry, adapters through `authsec.logger`) holds this object, so all of it follows.
 */
export function createDefaultLogger(): Logger {
  let target = createLogger();
  const logger: Logger = {
    debug: (message, fields) => target.debug(message, fields),
    info: (message, fields) => target.info(message, fields),
    warn: (message, fields) => target.warn(message, fields),
    error: (message, fields) => target.error(message, fields),
  };
  redirects.set(logger, (next) => {
    target = next;
  });
  return logger;
}

/**
 * Sends the logs of `owner` (an engine or a resource server) to `logger` when `owner` logs through its default
 * logger; an explicit `logger` option of `createAuthSec` is kept. Returns whether the logs were redirected.
 * Adapters call it with the framework's logger (`fastify.log`, Nest's `Logger`).
 */
export function useApplicationLogger(owner: { readonly logger: Logger }, logger: Logger): boolean {
  const redirect = redirects.get(owner.logger);
  if (redirect === undefined) return false;
  redirect(logger);
  return true;
}
