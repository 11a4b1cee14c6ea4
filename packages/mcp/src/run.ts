import type { Readable, Writable } from 'node:stream';
import {
  type AuthSec,
  type AuthSecEnvOptions,
  AuthSecError,
  type AuthSecOptions,
  authSecOptionsFromEnv,
  createAuthSec,
  createJsonLinesAuditSink,
  createLogger,
  type Principal,
  type PrincipalDirectory,
  type ServiceAccess,
} from '@authsec/core';
import { StdioServerTransport } from '@modelcontextprotocol/sdk/server/stdio.js';
import { openDefaults } from './defaults.js';
import { type RunningHttpServer, startHttpServer } from './http.js';
import { type AuthSecMcpServer, createAuthSecServer } from './server.js';
import { createShutdown } from './shutdown.js';
import type { AuthSecTool, LoginProvider } from './types.js';

/** Options of {@link runMcpServerWithOAuth}. Anything absent comes from the `AUTHSEC_*` environment. */
export interface RunMcpServerOptions {
  /** The server's name, shown to clients (the brief's `app_name`). */
  readonly appName: string;
  /** The server's version. Default `'0.0.0'`. */
  readonly version?: string;
  /** The tools, built with `protect()` and `publicTool()`. */
  readonly tools: readonly AuthSecTool[];
  /** OAuth client id of the tool-based login. Default `AUTHSEC_CLIENT_ID`. */
  readonly clientId?: string;
  /** OAuth client secret of the tool-based login (confidential clients only). Default `AUTHSEC_CLIENT_SECRET`. */
  readonly clientSecret?: string;
  /** `'stdio'` (default: what MCP clients start) or `'http'` (Streamable HTTP at `/mcp`). */
  readonly transport?: 'stdio' | 'http';
  /** HTTP port. Default `PORT`, else 3000. */
  readonly port?: number;
  /** HTTP interface. Default `HOST`, else `127.0.0.1`. */
  readonly host?: string;
  /**
   * The engine, or its options. Default: built from the environment (`AUTHSEC_ISSUER`, `AUTHSEC_RESOURCE_URL`,
   * ...), with audit events as JSON lines on stderr. An engine given here is closed with the server.
   */
  readonly authsec?: AuthSec | AuthSecOptions;
  /**
   * The tool-based login (the `oauth_*` tools). `false` turns it off. Over HTTP it is used only with
   * `allowToolLoginOverHttp`.
   */
  readonly login?: LoginProvider | false;
  /**
   * Offers the login tools over HTTP to clients without OAuth support: loopback only, stateful only, and
   * warned about at start, since the MCP session then is the credential. Default `false`.
   */
  readonly allowToolLoginOverHttp?: boolean;
  /** The canonical MCP URL (the audience tokens must carry). Default `AUTHSEC_RESOURCE_URL`. */
  readonly resourceUrl?: string;
  /** `authorization_servers` of the HTTP metadata. Default: the engine's configured issuers. */
  readonly authorizationServers?: readonly string[];
  /** HTTP stateless mode (see `createMcpHttpHandler`). Default `false`. */
  readonly stateless?: boolean;
  /**
   * The `services` of a tool's context. Default, with the embedded defaults (no `authsec` given): the tenant's
   * credentials from Vault (`AUTHSEC_VAULT_ADDR`) or the encrypted PostgreSQL store; with an engine of your
   * own: none (reads fail with `SERVICE_UNAVAILABLE`), pass `createServiceAccessFactory(...)`.
   */
  readonly services?: (principal: Principal) => ServiceAccess;
  /** Grant changes to follow with `tools/list_changed`. Default: the engine options' `directory`. */
  readonly directory?: PrincipalDirectory;
  /** Instructions for the model. */
  readonly instructions?: string;
  /** Environment to read. Default `process.env`. */
  readonly env?: Readonly<Record<string, string | undefined>>;
  /** stdio streams. Default `process.stdin` / `process.stdout`. */
  readonly stdio?: { readonly stdin: Readable; readonly stdout: Writable };
  /** Close on SIGINT / SIGTERM and exit. Default `true`. */
  readonly handleSignals?: boolean;
  /** Exit the process once closed after stdin ended or a signal. Default: `true` with the process's own stdio. */
  readonly exitOnClose?: boolean;
}

/** A running server. */
export interface RunningMcpServer {
  readonly server: AuthSecMcpServer;
  readonly authsec: AuthSec;
  readonly transport: 'stdio' | 'http';
  /** The MCP endpoint URL (HTTP only). */
  readonly url: string | undefined;
  /** Settles once the server has closed (stdin ended, a signal, or {@link RunningMcpServer.close}). */
  readonly closed: Promise<void>;
  /** Closes the transport, the server, the login and the engine (flushing audit). Idempotent. */
  close(): Promise<void>;
}

function isEngine(value: AuthSec | AuthSecOptions): value is AuthSec {
  return typeof (value as AuthSec).authorizeTool === 'function';
}

function issuerNames(options: AuthSecOptions): string[] {
  return options.issuers.map((issuer) => (typeof issuer === 'string' ? issuer : issuer.issuer));
}

interface ResolvedEngine {
  readonly authsec: AuthSec;
  /** Issuer URLs, when known (for `authorization_servers`). */
  readonly issuers: readonly string[];
  readonly directory: PrincipalDirectory | undefined;
}

// The seam where storage (database-backed directory, sessions, secrets) plugs in: it will open the storage
// from the environment and pass its directory to the engine.
function resolveEngine(
  options: RunMcpServerOptions,
  env: AuthSecEnvOptions,
  audience: string | undefined,
): ResolvedEngine {
  const given = options.authsec;
  if (given !== undefined && isEngine(given)) {
    return { authsec: given, issuers: env.issuers.map((i) => i.issuer), directory: options.directory };
  }
  const logger = createLogger({ level: env.logLevel });
  let engineOptions: AuthSecOptions;
  if (given !== undefined) {
    engineOptions = given;
  } else {
    if (env.issuers.length === 0) {
      throw new AuthSecError(
        'CONFIG_INVALID',
        'AUTHSEC_ISSUER is not set: set it to your authorization server, or pass `authsec` to runMcpServerWithOAuth',
      );
    }
    if (audience === undefined) {
      throw new AuthSecError(
        'CONFIG_INVALID',
        'AUTHSEC_RESOURCE_URL is not set: it names the audience tokens must carry (this server)',
      );
    }
    engineOptions = {
      issuers: env.issuers,
      audience,
      ...(env.algorithms ? { algorithms: env.algorithms } : {}),
      ...(env.requiredTokenType ? { requiredTokenType: env.requiredTokenType } : {}),
      ...(env.clockToleranceSeconds === undefined
        ? {}
        : { clockToleranceSeconds: env.clockToleranceSeconds }),
      ...(env.defaultTenant ? { defaultTenant: env.defaultTenant } : {}),
    };
  }
  const authsec = createAuthSec({
    logger,
    ...engineOptions,
    // stdout belongs to MCP under stdio: audit events go to stderr unless sinks were chosen.
    audit: engineOptions.audit ?? { sinks: [createJsonLinesAuditSink()] },
  });
  return {
    authsec,
    issuers: issuerNames(engineOptions),
    directory: options.directory ?? engineOptions.directory,
  };
}

// The seam where the default tool-based login plugs in (built from clientId/clientSecret and the storage).
function resolveLogin(options: RunMcpServerOptions, authsec: AuthSec): LoginProvider | undefined {
  if (options.login === false) return undefined;
  if (options.login !== undefined) return options.login;
  authsec.logger.warn('No login provider configured: callers without a bearer token see only public tools', {
    option: 'login',
  });
  return undefined;
}

/**
 * The brief's one-liner: serves `tools` over stdio (default) or Streamable HTTP with authentication,
 * per-caller tool lists, authorization on every call and audit. Options not given come from the `AUTHSEC_*`
 * environment; invalid configuration throws `CONFIG_INVALID` (naming the variable) or `TypeError` before
 * anything is served. Under stdio, stdout carries MCP messages only (logs and audit go to stderr), and the
 * server closes (flushing audit) when stdin ends or on SIGINT/SIGTERM, then exits.
 *
 * @example
 * ```ts
 * await runMcpServerWithOAuth({ appName: 'My Secure MCP Server', tools: [hello, adminPanel] });
 * ```
 */
export async function runMcpServerWithOAuth(options: RunMcpServerOptions): Promise<RunningMcpServer> {
  if (typeof options !== 'object' || options === null)
    throw new TypeError('runMcpServerWithOAuth: options required');
  if (typeof options.appName !== 'string' || options.appName === '')
    throw new TypeError('runMcpServerWithOAuth: appName is required');
  const transport = options.transport ?? 'stdio';
  if (transport !== 'stdio' && transport !== 'http')
    throw new TypeError(`runMcpServerWithOAuth: transport must be 'stdio' or 'http'`);
  const env = authSecOptionsFromEnv(options.env ?? process.env);
  const host = options.host ?? env.host;
  const port = options.port ?? env.port ?? 3000;
  const configuredResource = options.resourceUrl ?? env.audience;
  const resourceUrl =
    transport === 'http' && configuredResource === undefined && port !== 0
      ? `http://${host.includes(':') ? `[${host}]` : host}:${port}/mcp`
      : configuredResource;
  // Without an engine of the caller's, everything comes from the environment: storage, database-backed
  // validation, the tool-based login and, in development only, the embedded IdP and database.
  const defaults =
    options.authsec === undefined
      ? await openDefaults({
          appName: options.appName,
          tools: options.tools,
          env,
          rawEnv: options.env ?? process.env,
          transport,
          resourceUrl,
          host,
          clientId: options.clientId ?? env.clientId,
          clientSecret: options.clientSecret ?? env.clientSecret,
          login:
            options.login === undefined && (transport === 'stdio' || options.allowToolLoginOverHttp === true),
          // A login finished by another process (the Inspector CLI starts one per call), ids bound to the folder.
          crossProcess: transport === 'stdio',
        })
      : undefined;
  const { authsec, issuers, directory } = defaults
    ? { authsec: defaults.authsec, issuers: defaults.issuers, directory: defaults.storage.directory }
    : resolveEngine(options, env, resourceUrl);
  const logger = authsec.logger;
  const services = options.services ?? defaults?.services;

  let login: LoginProvider | undefined;
  let server: AuthSecMcpServer;
  try {
    login = defaults ? (defaults.login ?? resolveLogin(options, authsec)) : resolveLogin(options, authsec);
    if (transport === 'http' && login && !options.allowToolLoginOverHttp) {
      logger.info('The login tools are not offered over HTTP (allowToolLoginOverHttp is off)');
      await login.close();
      login = undefined;
    }
    server = createAuthSecServer({
      name: options.appName,
      version: options.version ?? '0.0.0',
      tools: options.tools,
      authsec,
      ...(login ? { login } : {}),
      ...(services ? { services } : {}),
      ...(directory ? { directory } : {}),
      ...(options.instructions === undefined ? {} : { instructions: options.instructions }),
    });
  } catch (error) {
    await Promise.allSettled([login?.close(), authsec.close(), defaults?.close()]);
    throw error;
  }

  let resolveClosed!: () => void;
  const closed = new Promise<void>((resolve) => {
    resolveClosed = resolve;
  });
  let http: RunningHttpServer | undefined;
  const cleanups: (() => void)[] = [];
  let closing: Promise<void> | undefined;
  const close = (): Promise<void> => {
    closing ??= (async () => {
      for (const cleanup of cleanups) cleanup();
      await http?.close();
      await server.close();
      await defaults?.close();
      resolveClosed();
    })();
    return closing;
  };
  const { shutdown, dispose } = createShutdown({
    logger,
    close,
    closing: () => closing !== undefined,
    handleSignals: options.handleSignals !== false,
    exitOnClose: options.exitOnClose ?? options.stdio === undefined,
  });
  cleanups.push(dispose);

  try {
    if (transport === 'stdio') {
      const stdin = options.stdio?.stdin ?? process.stdin;
      const stdout = options.stdio?.stdout ?? process.stdout;
      const connection = server.createServer('stdio');
      const stdio = new StdioServerTransport(stdin, stdout);
      await connection.connect(stdio);
      const previous = stdio.onclose;
      stdio.onclose = () => {
        previous?.();
        shutdown('transport closed');
      };
      const onEnd = () => shutdown('stdin closed');
      const onOutputError = () => shutdown('stdout closed');
      stdin.once('end', onEnd);
      stdin.once('close', onEnd);
      stdout.once('error', onOutputError);
      cleanups.push(() => {
        stdin.off('end', onEnd);
        stdin.off('close', onEnd);
        stdout.off('error', onOutputError);
      });
      logger.info(`${options.appName} is serving MCP on stdio`, { tools: server.tools.length });
    } else {
      const authorizationServers = options.authorizationServers ?? issuers;
      if (authorizationServers.length === 0) {
        throw new TypeError(
          'runMcpServerWithOAuth: pass authorizationServers (or set AUTHSEC_ISSUER): HTTP clients discover where to get tokens from it',
        );
      }
      http = await startHttpServer({
        server,
        authsec,
        host,
        port,
        ...(resourceUrl === undefined ? {} : { resourceUrl }),
        authorizationServers,
        ...(defaults && resourceUrl === undefined ? { resourceUrl: defaults.audience } : {}),
        resourceName: options.appName,
        stateless: options.stateless === true,
        allowToolLogin: options.allowToolLoginOverHttp === true && login !== undefined,
      });
      logger.info(`${options.appName} is serving MCP at ${http.url}`, { tools: server.tools.length });
    }
  } catch (error) {
    await close();
    throw error;
  }

  return {
    server,
    authsec,
    transport,
    url: http?.url,
    closed,
    close,
  };
}
