import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { AuthSecError, type Logger } from '@authsec/core';
import { PAGE_HEADERS, page } from './pages.js';

/** What the callback handler answers: a status and the page's title and message. */
export interface CallbackPage {
  readonly status: number;
  readonly title: string;
  readonly message: string;
}

/** Options of {@link createCallbackServer}. */
export interface CallbackServerOptions {
  /** Loopback address to bind. */
  readonly host: '127.0.0.1' | '::1';
  /** Port; `0` picks a free one. */
  readonly port: number;
  /** Path of the redirect URI (`/callback`). */
  readonly path: string;
  /** Handles one `GET <path>?...` request; must not throw (a throw becomes a generic 500 page). */
  readonly handle: (url: URL) => Promise<CallbackPage>;
  readonly logger: Logger;
}

/** The loopback listener of the authorization code flow (RFC 8252 §7.3). */
export interface CallbackServer {
  /** Starts listening (once; later calls share the first) and returns the redirect URI. */
  start(): Promise<string>;
  /** Stops listening and drops open connections, for good: a later `start()` is refused. */
  close(): Promise<void>;
}

function send(res: ServerResponse, result: CallbackPage, head: boolean): void {
  res.writeHead(result.status, PAGE_HEADERS);
  res.end(head ? undefined : page(result.title, result.message));
}

/** Options of {@link createCallbackHandler}. */
export interface CallbackHandlerOptions {
  /** Path of the redirect URI. */
  readonly path: string;
  /**
   * The `Host` values accepted (lower case), or `undefined` to accept any: a loopback callback accepts only the
   * address and port it is reached at, so a DNS-rebound name cannot drive it.
   */
  readonly allowedHosts: () => ReadonlySet<string> | undefined;
  /** Handles one `GET <path>?...` request; must not throw (a throw becomes a generic 500 page). */
  readonly handle: (url: URL) => Promise<CallbackPage>;
  readonly logger: Logger;
}

/**
 * The callback route on `node:http` objects: only `GET`/`HEAD` on its path, only for an accepted `Host`, with
 * pages that are never cached, framed or referred. `url` overrides `req.url` (a framework mounted under a
 * prefix passes the full path).
 */
export function createCallbackHandler(
  options: CallbackHandlerOptions,
): (req: IncomingMessage, res: ServerResponse, url?: string) => void {
  return (req, res, target = req.url) => {
    const head = req.method === 'HEAD';
    if (req.method !== 'GET' && !head) {
      res.writeHead(405, { ...PAGE_HEADERS, allow: 'GET, HEAD' });
      res.end();
      return;
    }
    const hosts = options.allowedHosts();
    if (hosts !== undefined && !hosts.has((req.headers.host ?? '').toLowerCase())) {
      send(
        res,
        { status: 400, title: 'Wrong address', message: 'This page is only served on loopback.' },
        head,
      );
      return;
    }
    const url = new URL(target ?? '/', 'http://callback.invalid');
    if (url.pathname !== options.path) {
      send(res, { status: 404, title: 'Not found', message: 'There is nothing here.' }, head);
      return;
    }
    options.handle(url).then(
      (result) => send(res, result, head),
      (error: unknown) => {
        options.logger.error('The login callback failed', { cause: String(error) });
        send(
          res,
          { status: 500, title: 'Login failed', message: 'The server could not complete the login.' },
          head,
        );
      },
    );
  };
}

/**
 * A lazily started HTTP listener on a loopback address serving {@link createCallbackHandler} for the address
 * and port it listens on. The listening socket is unref'd: it never keeps a process alive.
 */
export function createCallbackServer(options: CallbackServerOptions): CallbackServer {
  let server: Server | undefined;
  let starting: Promise<string> | undefined;
  let allowedHosts = new Set<string>();
  let closed = false;

  const onRequest = createCallbackHandler({
    path: options.path,
    allowedHosts: () => allowedHosts,
    handle: options.handle,
    logger: options.logger,
  });

  const listen = async (): Promise<string> => {
    const created = createServer(onRequest);
    const address = await new Promise<AddressInfo>((resolve, reject) => {
      created.once('error', reject);
      created.listen(options.port, options.host, () => {
        created.off('error', reject);
        resolve(created.address() as AddressInfo);
      });
    }).catch((cause: unknown) => {
      throw new AuthSecError(
        'SERVICE_UNAVAILABLE',
        `The login callback listener could not start on ${options.host}:${options.port}`,
        { cause },
      );
    });
    created.unref();
    if (closed) {
      created.close();
      throw new AuthSecError('SERVICE_UNAVAILABLE', 'The login is closed');
    }
    server = created;
    const hostInUrl = options.host === '::1' ? '[::1]' : options.host;
    allowedHosts = new Set([`${hostInUrl}:${address.port}`, `localhost:${address.port}`]);
    return `http://${hostInUrl}:${address.port}${options.path}`;
  };

  return {
    start() {
      if (closed) return Promise.reject(new AuthSecError('SERVICE_UNAVAILABLE', 'The login is closed'));
      starting ??= listen().catch((error: unknown) => {
        starting = undefined;
        throw error;
      });
      return starting;
    },
    async close() {
      closed = true;
      const current = server;
      server = undefined;
      starting = undefined;
      if (!current) return;
      await new Promise<void>((resolve) => {
        current.close(() => resolve());
        current.closeAllConnections();
      });
    },
  };
}
