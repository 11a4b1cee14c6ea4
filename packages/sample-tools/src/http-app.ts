import { createServer, type Server, type ServerResponse } from 'node:http';
import {
  type AuthSec,
  authSecOptionsFromEnv,
  isAuthSecError,
  type Principal,
  type PrincipalDirectory,
  type ServiceAccess,
} from '@authsec/core';
import { type AuthSecTool, openDefaults } from '@authsec/mcp';
import { createSampleTools } from './index.js';

/** What a sample HTTP app's framework mount receives: only what it serves with. */
export interface SampleHttpContext {
  /**
   * The HTTP server, already listening; the mount attaches its request handler. Until the mount has resolved,
   * every request is answered `503` with `Retry-After: 1` and `{"status":"starting"}` (none reaches the mount's
   * handler), so attaching early is safe.
   */
  readonly http: Server;
  /** The canonical MCP URL (the token audience). */
  readonly resourceUrl: string;
  /** The tools to serve. */
  readonly tools: readonly AuthSecTool[];
  /** The engine: verifies, decides, audits. Closing the mount's MCP server closes it. */
  readonly authsec: AuthSec;
  /** The `services` of a tool's context. Default: none (`noServiceAccess`: reads fail, and say why). */
  readonly services?: (principal: Principal) => ServiceAccess;
  /** The directory whose grant changes refresh live callers' tool lists. Default: none. */
  readonly directory?: PrincipalDirectory;
  /** The authorization servers the protected resource metadata names. */
  readonly issuers: readonly string[];
}

/** A mounted app: how to close it (sessions, MCP server, engine). */
export interface SampleHttpMount {
  close(): Promise<void>;
}

/** Mounts a framework on `context.http` (each sample app exports one). */
export type SampleHttpMountFunction = (context: SampleHttpContext) => Promise<SampleHttpMount>;

/** What {@link SampleHttpServeOptions.open} opened for the mount, and how to release it after the mount closed. */
export interface SampleHttpOpened extends Omit<SampleHttpContext, 'http' | 'resourceUrl'> {
  close(): Promise<void>;
}

/** Options of {@link serveSampleHttpApp}. */
export interface SampleHttpServeOptions {
  /** The host to bind. */
  readonly host: string;
  /** The port to bind; 0 lets the system choose. */
  readonly port: number;
  /** The canonical MCP URL. Default: `http://<host>:<bound port>/mcp`. */
  readonly resourceUrl?: string;
  /** Opens what the mount serves with, once the resource URL (with the bound port) is known. */
  open(resourceUrl: string): Promise<SampleHttpOpened>;
  /** The app's framework mount. */
  readonly mount: SampleHttpMountFunction;
}

/** A sample app mounted on a listening HTTP server. */
export interface ServedSampleHttpApp {
  readonly http: Server;
  readonly host: string;
  readonly port: number;
  readonly resourceUrl: string;
  /** Closes the mount, then the HTTP server, then what `open` opened. Never throws. */
  close(): Promise<void>;
}

/** Options of {@link runSampleHttpApp}. */
export interface SampleHttpAppOptions {
  /** Server name, shown to clients and in logs. */
  readonly appName: string;
  /** Command name, prefixed to a start-up error. */
  readonly binName: string;
  /** Mounts the framework on `context.http`; returns how to close it (sessions, MCP server). */
  readonly mount: SampleHttpMountFunction;
  /**
   * The port when `PORT` is not set. Each sample app has its own (Express 3000, Fastify 3001, NestJS 3002), so
   * two of them run side by side.
   */
  readonly defaultPort: number;
  /** The environment to read. Default `process.env`. */
  readonly env?: NodeJS.ProcessEnv;
}

function listen(server: Server, port: number, host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve((server.address() as { port: number }).port);
    });
  });
}

const STARTING_BODY = JSON.stringify({ status: 'starting' });

/** The answer to a request that arrives while the app is starting: come back in a second. */
function answerStarting(res: ServerResponse): void {
  res.writeHead(503, {
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(STARTING_BODY),
    'retry-after': '1',
    'cache-control': 'no-store',
  });
  res.end(STARTING_BODY);
}

/**
 * Answers every request on `server` with {@link answerStarting} until the returned function is called. The gate
 * sits in `emit`, ahead of every `'request'` listener, because the mounts attach theirs at different points of
 * their start (Fastify's `serverFactory` before `ready()`): one more listener would answer alongside a
 * half-started framework. Once released, `emit` is the server's own again (nothing on the request path).
 */
function holdRequests(server: Server): () => void {
  const emit = server.emit;
  let holding = true;
  const gated = function (this: Server, event: string | symbol, ...args: unknown[]): boolean {
    if (holding && event === 'request') {
      answerStarting(args[1] as ServerResponse);
      return true;
    }
    return Reflect.apply(emit, this, [event, ...args]) as boolean;
  } as Server['emit'];
  server.emit = gated;
  return () => {
    holding = false;
    if (server.emit === gated) server.emit = emit;
  };
}

function closeServer(server: Server): Promise<void> {
  if (!server.listening) return Promise.resolve();
  server.closeAllConnections();
  return new Promise((resolve) => server.close(() => resolve()));
}

/**
 * Serves a sample app's mount the way every sample app starts: bind first (with port 0 the resource URL, the
 * token audience, names the port the system chose), open what the mount needs, mount. Until the mount has
 * resolved, requests are answered `503` with `Retry-After: 1` and `{"status":"starting"}`, so a probe sent
 * during start-up is answered at once instead of waiting for a handler. A failure closes whatever was opened
 * and rethrows.
 */
export async function serveSampleHttpApp(options: SampleHttpServeOptions): Promise<ServedSampleHttpApp> {
  const { host } = options;
  const http = createServer();
  const ready = holdRequests(http);
  const port = await listen(http, options.port, host);
  let opened: SampleHttpOpened | undefined;
  let mounted: SampleHttpMount | undefined;
  const close = async () => {
    await mounted?.close().catch(() => {});
    await closeServer(http);
    await opened?.close().catch(() => {});
  };
  try {
    const resourceUrl =
      options.resourceUrl ?? `http://${host.includes(':') ? `[${host}]` : host}:${port}/mcp`;
    opened = await options.open(resourceUrl);
    const { close: _release, ...context } = opened;
    mounted = await options.mount({ ...context, http, resourceUrl });
    ready();
    return { http, host, port, resourceUrl, close };
  } catch (error) {
    await close();
    throw error;
  }
}

async function start(options: SampleHttpAppOptions): Promise<void> {
  const rawEnv = options.env ?? process.env;
  const env = authSecOptionsFromEnv(rawEnv);
  const served = await serveSampleHttpApp({
    host: env.host,
    port: env.port ?? options.defaultPort,
    ...(env.audience === undefined ? {} : { resourceUrl: env.audience }),
    mount: options.mount,
    async open(resourceUrl) {
      const tools = createSampleTools();
      const defaults = await openDefaults({
        appName: options.appName,
        tools,
        env,
        rawEnv,
        transport: 'http',
        resourceUrl,
        host: env.host,
        clientId: env.clientId,
        clientSecret: env.clientSecret,
        login: false,
      });
      return {
        tools,
        authsec: defaults.authsec,
        services: defaults.services,
        directory: defaults.storage.directory,
        issuers: defaults.issuers,
        close: () => defaults.close(),
      };
    },
  });
  let shuttingDown = false;
  const shutdown = (signal: NodeJS.Signals): void => {
    if (shuttingDown) return;
    shuttingDown = true;
    void (async () => {
      process.stderr.write(`${options.appName}: ${signal}, shutting down\n`);
      await served.close();
      process.exit(0);
    })();
  };
  process.once('SIGINT', shutdown);
  process.once('SIGTERM', shutdown);
  process.stderr.write(
    `${options.appName} is serving MCP at ${served.resourceUrl} (listening on ${served.host}:${served.port})\n`,
  );
}

/** What a failed start prints: the cause a user can act on, or the stack of a bug. */
function startError(error: unknown): string {
  if (isAuthSecError(error)) return error.message;
  const { code, address, port } = (error ?? {}) as { code?: string; address?: string; port?: number };
  if (code === 'EADDRINUSE')
    return `${address}:${port} is already in use; set PORT to another port (PORT=0 picks a free one)`;
  if (code === 'EADDRNOTAVAIL' || code === 'EACCES')
    return `cannot listen on ${address}:${port} (${code}); check HOST and PORT`;
  return String((error as Error)?.stack ?? error);
}

/**
 * Runs a sample HTTP app the way all of them run: the `AUTHSEC_*` contract (embedded development defaults when
 * nothing is configured), the sample tool set, `HOST`/`PORT` (default 127.0.0.1 and the app's `defaultPort`), a clean shutdown on
 * SIGINT/SIGTERM. A start-up error is printed (a configuration error names the variable) and exits 1.
 */
export async function runSampleHttpApp(options: SampleHttpAppOptions): Promise<void> {
  try {
    await start(options);
  } catch (error) {
    // A configuration error names the variable at fault, a taken port names PORT; anything else is a bug, and
    // its stack helps.
    process.stderr.write(`${options.binName}: ${startError(error)}\n`);
    process.exit(1);
  }
}
