import type { ToolContext } from '../../src/types.js';

/**
 * The request side of a tool context for a handler run outside a server (no client behind it): nothing is
 * cancelled, notifications and logs go nowhere, and a request to the client fails.
 */
export function detachedCall(): Pick<
  ToolContext,
  'signal' | 'progressToken' | 'sendNotification' | 'sendRequest' | 'log'
> {
  return {
    signal: new AbortController().signal,
    progressToken: undefined,
    sendNotification: async () => {},
    sendRequest: async () => {
      throw new Error('no client behind this tool context');
    },
    log: async () => {},
  };
}
