import type { Logger } from '@authsec/core';

/** The `onChange` listeners of a login provider. */
export interface ChangeListeners {
  /** `LoginProvider.onChange`: adds `listener`, returns its removal. A non-function is a `TypeError`. */
  add(listener: (connectionId: string) => void): () => void;
  /** Tells every listener that who is logged in on `connectionId` changed; a throwing listener is logged. */
  fire(connectionId: string): void;
  clear(): void;
}

/** Creates the listener set of a login provider. */
export function createChangeListeners(logger: Logger): ChangeListeners {
  const listeners = new Set<(connectionId: string) => void>();
  return {
    add(listener) {
      if (typeof listener !== 'function') throw new TypeError('onChange: listener must be a function');
      listeners.add(listener);
      return () => {
        listeners.delete(listener);
      };
    },
    fire(connectionId) {
      for (const listener of [...listeners]) {
        try {
          listener(connectionId);
        } catch (error) {
          logger.error('A login change listener failed', { cause: String(error) });
        }
      }
    },
    clear: () => listeners.clear(),
  };
}
