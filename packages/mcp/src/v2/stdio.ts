/**
 * stdio on the MCP SDK v2, both eras: the SDK's `serveStdio` owns the opening exchange (2026-07-28 `server/discover`
 * or a 2025 `initialize`) and pins one instance for the connection; AuthSec keeps that instance in step with
 * who is logged in. The login is read before the first message and again before every request (it may have
 * expired, been refreshed, or ended in another process), never in the factory: `serveStdio` may build a probe
 * instance and discard it, so the factory only builds.
 */

import type { DirectoryChange, Principal, PrincipalDirectory } from '@authsec/core';
import {
  isJSONRPCRequest,
  type JSONRPCMessage,
  type McpServer,
  type McpServerFactory,
  type Transport,
} from '@modelcontextprotocol/server';
import { StdioServerTransport, serveStdio } from '@modelcontextprotocol/server/stdio';
import type { LoginProvider } from '../types.js';
import type { ProtectedMcpServer } from './server.js';
import { declareTools } from './tools.js';

/** The one connection of a stdio server, as the login keys it. */
export const STDIO_CONNECTION_ID = 'stdio';

/** Options of {@link serveProtectedStdio}. */
export interface ServeProtectedStdioOptions {
  /**
   * Who the caller is: the tool-based login (its `oauth_*` tools are declared on the server, public) or
   * credentials from the environment (`AUTHSEC_ACCESS_TOKEN`, no tools). Default: nobody (public primitives only).
   */
  readonly login?: LoginProvider;
  /**
   * The directory whose grant changes (`authsec grant` in another process, through the PostgreSQL change feed)
   * should refresh the caller's tools. A change reaches this connection only when it concerns the caller's
   * tenant (and subject, for a per-subject change). Pass the engine's. Default: none.
   */
  readonly directory?: PrincipalDirectory;
  /** The SDK's handling of a 2025-era opening: `'serve'` (default) or `'reject'`. */
  readonly legacy?: 'serve' | 'reject';
  /** The wire. Default: a `StdioServerTransport` over `process.stdin`/`process.stdout`. */
  readonly transport?: Transport;
  /** Out-of-band errors of the SDK's entry (reporting only). */
  readonly onerror?: (error: Error) => void;
}

/** A served stdio connection. */
export interface ProtectedStdioHandle {
  /** Settles once the connection has closed (stdin ended, or {@link ProtectedStdioHandle.close}). */
  readonly closed: Promise<void>;
  /** Closes the connection (the pinned instance and the transport). The login is the caller's to close. */
  close(): Promise<void>;
}

/**
 * The wire with a gate in front of the instance: before each request reaches it, `before` runs (messages stay
 * in order). Everything else passes through.
 */
class GatedTransport implements Transport {
  onclose?: () => void;
  onerror?: (error: Error) => void;
  onmessage?: Transport['onmessage'];
  private queue: Promise<void> = Promise.resolve();

  constructor(
    private readonly wire: Transport,
    private readonly before: (message: JSONRPCMessage) => Promise<void>,
    private readonly onClosed: () => void,
  ) {}

  start(): Promise<void> {
    this.wire.onmessage = (message, extra) => {
      this.queue = this.queue
        .then(() => this.before(message))
        .then(() => this.onmessage?.(message, extra))
        // One failed delivery must not stop the ones after it.
        .catch((error: unknown) => this.onerror?.(error instanceof Error ? error : new Error(String(error))));
    };
    this.wire.onerror = (error) => this.onerror?.(error);
    this.wire.onclose = () => {
      this.onclose?.();
      this.onClosed();
    };
    return this.wire.start();
  }

  send(...args: Parameters<Transport['send']>): Promise<void> {
    return this.wire.send(...args);
  }

  close(): Promise<void> {
    return this.wire.close();
  }

  setProtocolVersion = (version: string): void => {
    this.wire.setProtocolVersion?.(version);
  };
}

/**
 * Serves a protected v2 server over stdio in both eras. With `login`, the caller is whoever is logged in on
 * the connection: before login only the public primitives (the `oauth_*` tools among them), after it exactly
 * the caller's; each change updates the pinned instance, which sends `notifications/tools/list_changed` (on a
 * 2026-07-28 connection the SDK delivers it on the client's `subscriptions/listen` streams). A login that
 * cannot be checked (the store is down) counts as nobody: fail closed. Misuse is a `TypeError`.
 */
export async function serveProtectedStdio(
  server: ProtectedMcpServer,
  options: ServeProtectedStdioOptions = {},
): Promise<ProtectedStdioHandle> {
  if (typeof server?.instance !== 'function' || typeof server.sync !== 'function')
    throw new TypeError('serveProtectedStdio: server must come from protect()');
  const { login } = options;
  if (login !== undefined && typeof login.principalFor !== 'function')
    throw new TypeError('serveProtectedStdio: login must be a LoginProvider');
  const logger = server.authsec.logger;
  if (login !== undefined && login.tools.length > 0)
    declareTools(server, login.tools, {
      connectionId: STDIO_CONNECTION_ID,
      sessionIdFor: (id) => login.sessionIdFor(id),
    });

  const live = new Set<McpServer>();
  let principal: Principal | undefined;
  const update = async (): Promise<void> => {
    try {
      principal = login ? await login.principalFor(STDIO_CONNECTION_ID) : undefined;
    } catch (error) {
      logger.warn('The login could not be checked; serving as nobody until it can', {
        cause: String(error),
      });
      principal = undefined;
    }
    for (const instance of live) server.sync(instance, principal);
  };
  // Resumes a remembered login (a side effect) here, once, before the SDK may call the factory.
  await update();
  const stopLogin = login?.onChange(() => {
    void update();
  });
  const concerns = (change: DirectoryChange): boolean =>
    change.tenantId === null ||
    (principal !== undefined &&
      principal.tenantId === change.tenantId &&
      (change.subject === null || change.subject === principal.subject));
  const stopDirectory = options.directory?.subscribe?.((change) => {
    if (concerns(change)) void update();
  });
  const unsubscribe = (): void => {
    stopLogin?.();
    stopDirectory?.();
  };

  const factory: McpServerFactory = () => {
    const instance = server.instance(principal);
    live.add(instance);
    const previous = instance.server.onclose;
    instance.server.onclose = () => {
      live.delete(instance);
      previous?.();
    };
    return instance;
  };

  let resolveClosed!: () => void;
  const closed = new Promise<void>((resolve) => {
    resolveClosed = resolve;
  });
  const wire = new GatedTransport(
    options.transport ?? new StdioServerTransport(),
    async (message) => {
      if (isJSONRPCRequest(message)) await update();
    },
    () => {
      unsubscribe();
      live.clear();
      resolveClosed();
    },
  );
  const handle = serveStdio(factory, {
    transport: wire,
    ...(options.legacy === undefined ? {} : { legacy: options.legacy }),
    ...(options.onerror === undefined ? {} : { onerror: options.onerror }),
  });
  return {
    closed,
    async close() {
      unsubscribe();
      await handle.close();
      resolveClosed();
    },
  };
}
