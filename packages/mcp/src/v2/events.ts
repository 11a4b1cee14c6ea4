/**
 * Change notifications that reach only whom they concern. The SDK's `subscriptions/listen` router subscribes one
 * listener per open stream to a `ServerEventBus` and delivers every published event to every listener; its
 * in-memory bus knows nothing of callers. This bus remembers, for each listener, the caller whose request opened
 * the stream (the endpoint serves each listen request with a handler of its own whose bus is
 * {@link ScopedEventBus.forCaller}), and delivers a change scoped to a tenant, or to one subject of it, only to
 * that tenant's (subject's) streams. (Not an `AsyncLocalStorage`: enabling one slows every promise of the
 * process, measured at about 50 µs per `tools/call` on the SDK's promise-heavy path.)
 */

import type { DirectoryChange, Principal } from '@authsec/core';
import type { ServerEvent, ServerEventBus } from '@modelcontextprotocol/server';

/** Who a change concerns: everyone (`tenantId: null`), a tenant, or one subject of a tenant. */
export type ChangeScope = DirectoryChange;

/** A change that concerns every caller. */
export const EVERYONE: ChangeScope = Object.freeze({ tenantId: null, subject: null });

/** Whether a change in `scope` concerns `principal` (an anonymous caller hears only changes for everyone). */
export function concerns(scope: ChangeScope, principal: Principal | undefined): boolean {
  if (scope.tenantId === null) return true;
  if (principal === undefined || principal.tenantId !== scope.tenantId) return false;
  return scope.subject === null || scope.subject === principal.subject;
}

/** A `ServerEventBus` that also delivers changes to one tenant or subject only. */
export interface ScopedEventBus extends ServerEventBus {
  /** Delivers `event` to the streams of the callers `scope` concerns (and `may` allows, when given). */
  publishTo(
    event: ServerEvent,
    scope: ChangeScope,
    may?: (principal: Principal | undefined) => boolean,
  ): void;
  /** The bus as seen by the listen streams `principal` opens: what they subscribe is theirs. */
  forCaller(principal: Principal | undefined): ServerEventBus;
  /** Open listen streams (for tests and metrics). */
  readonly listenerCount: number;
}

/**
 * Creates a {@link ScopedEventBus}. `publish` (the SDK's `notify.*` sugar) reaches every stream; a listener that
 * throws is reported to `onerror` and does not stop delivery to the others. `onListeners` hears the number of
 * open streams whenever it changes.
 */
export function createScopedEventBus(
  onerror?: (error: Error) => void,
  onListeners?: (count: number) => void,
): ScopedEventBus {
  const listeners = new Map<(event: ServerEvent) => void, Principal | undefined>();
  const publishTo: ScopedEventBus['publishTo'] = (event, scope, may) => {
    for (const [listener, principal] of [...listeners]) {
      if (!concerns(scope, principal) || (may !== undefined && !may(principal))) continue;
      try {
        listener(event);
      } catch (error) {
        onerror?.(error instanceof Error ? error : new Error(String(error)));
      }
    }
  };
  const subscribeAs = (principal: Principal | undefined, listener: (event: ServerEvent) => void) => {
    listeners.set(listener, principal);
    onListeners?.(listeners.size);
    return () => {
      if (listeners.delete(listener)) onListeners?.(listeners.size);
    };
  };
  const publish = (event: ServerEvent) => publishTo(event, EVERYONE);
  return {
    subscribe: (listener) => subscribeAs(undefined, listener),
    publish,
    publishTo,
    forCaller: (principal) => ({ subscribe: (listener) => subscribeAs(principal, listener), publish }),
    get listenerCount() {
      return listeners.size;
    },
  };
}
