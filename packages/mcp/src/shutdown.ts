import type { Logger } from '@authsec/core';

/** Options of {@link createShutdown}. */
export interface ShutdownOptions {
  readonly logger: Logger;
  /** Closes everything (idempotent). */
  readonly close: () => Promise<void>;
  /** Whether a close is already under way (then a shutdown does nothing, and does not exit). */
  readonly closing: () => boolean;
  /** Close on SIGINT / SIGTERM. */
  readonly handleSignals: boolean;
  /** Exit the process once a shutdown has closed everything. */
  readonly exitOnClose: boolean;
}

/** How a served process ends: {@link ShutdownOptions.close} once, then (optionally) `process.exit(0)`. */
export interface Shutdown {
  /** Closes (logging why) and exits when so configured; does nothing once a close is under way. */
  shutdown(reason: string): void;
  /** Removes the signal handlers. */
  dispose(): void;
}

/** The end of a long-running server (stdio: stdin closed, or a signal), shared by both SDK lines' entries. */
export function createShutdown(options: ShutdownOptions): Shutdown {
  const shutdown = (reason: string): void => {
    if (options.closing()) return;
    options.logger.info('Shutting down', { reason });
    void options.close().then(() => {
      if (options.exitOnClose) process.exit(0);
    });
  };
  const onSignal = (signal: NodeJS.Signals) => shutdown(signal);
  if (options.handleSignals) {
    process.once('SIGINT', onSignal);
    process.once('SIGTERM', onSignal);
  }
  return {
    shutdown,
    dispose() {
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
    },
  };
}
