/**
 * The logger the dev IdP writes to. Structurally the same as `@authsec/core`'s `Logger`, so one can be
 * passed for the other. The IdP never passes passwords, tokens or codes as fields.
 */
export interface DevIdpLogger {
  debug(message: string, fields?: Record<string, unknown>): void;
  info(message: string, fields?: Record<string, unknown>): void;
  warn(message: string, fields?: Record<string, unknown>): void;
  error(message: string, fields?: Record<string, unknown>): void;
}

/** Log levels, least severe first; `silent` writes nothing. */
export type DevIdpLogLevel = 'debug' | 'info' | 'warn' | 'error' | 'silent';

const ORDER: Record<DevIdpLogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40, silent: 99 };

/** Options of {@link createJsonLinesLogger}. */
export interface JsonLinesLoggerOptions {
  /** Lowest level written. Default `'warn'` (quiet: start-up warnings and server errors only). */
  level?: DevIdpLogLevel;
  /** Where lines go. Default `process.stderr`: stdout may belong to an MCP stdio transport. */
  stream?: { write(chunk: string): unknown };
}

/** A logger writing one JSON object per line (`time`, `level`, `name: "dev-idp"`, `msg`, fields). */
export function createJsonLinesLogger(options: JsonLinesLoggerOptions = {}): DevIdpLogger {
  const min = ORDER[options.level ?? 'warn'];
  const stream = options.stream ?? process.stderr;
  const line =
    (level: Exclude<DevIdpLogLevel, 'silent'>) => (message: string, fields?: Record<string, unknown>) => {
      if (ORDER[level] < min) return;
      stream.write(
        `${JSON.stringify({ time: new Date().toISOString(), level, name: 'dev-idp', msg: message, ...fields })}\n`,
      );
    };
  return { debug: line('debug'), info: line('info'), warn: line('warn'), error: line('error') };
}
