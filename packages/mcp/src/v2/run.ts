import { authSecOptionsFromEnv } from '@authsec/core';
import type { Implementation, McpServerOptions } from '@modelcontextprotocol/server';
import { StdioServerTransport } from '@modelcontextprotocol/server/stdio';
import { openDefaults } from '../defaults.js';
import type { RunMcpServerOptions } from '../run.js';
import { createShutdown } from '../shutdown.js';
import type { AuthSecTool } from '../types.js';
import { type ProtectedMcpServer, protect } from './server.js';
import { type ProtectedStdioHandle, STDIO_CONNECTION_ID, serveProtectedStdio } from './stdio.js';
import { declareTools } from './tools.js';

/**
 * Options of {@link runMcpV2StdioServer}: those of `runMcpServerWithOAuth` that stdio uses (anything absent
 * comes from the `AUTHSEC_*` environment), with the v2 declarations.
 */
export interface RunMcpV2StdioOptions
  extends Pick<
    RunMcpServerOptions,
    | 'appName'
    | 'version'
    | 'clientId'
    | 'clientSecret'
    | 'services'
    | 'env'
    | 'stdio'
    | 'handleSignals'
    | 'exitOnClose'
  > {
  /** Tools built with `protect()`/`publicTool()` of `@authsec/mcp` (they serve both SDK lines). */
  readonly tools?: readonly AuthSecTool[];
  /** Declares tools, resources and prompts the v2 way (`server.registerTool(name, { ..., requirement }, handler)`). */
  readonly declare?: (server: ProtectedMcpServer) => void;
  /** The SDK's `McpServer` options for every instance. */
  readonly serverOptions?: McpServerOptions;
  /** The SDK's handling of a 2025-era opening: `'serve'` (default) or `'reject'`. */
  readonly legacy?: 'serve' | 'reject';
}

/** A running v2 stdio server. */
export interface RunningMcpV2StdioServer {
  readonly server: ProtectedMcpServer;
  /** Settles once the server has closed (stdin ended, a signal, or {@link RunningMcpV2StdioServer.close}). */
  readonly closed: Promise<void>;
  /** Closes the connection, the login and everything the defaults opened (flushing audit). Idempotent. */
  close(): Promise<void>;
}

/**
 * `runMcpServerWithOAuth` for the MCP SDK v2 over stdio, both eras from one declaration: the embedded defaults
 * (storage, engine, the `oauth_*` login, or `AUTHSEC_ACCESS_TOKEN` credentials) from the `AUTHSEC_*` environment,
 * then {@link serveProtectedStdio}. stdout carries MCP messages only; logs and audit go to stderr.
 * Configuration errors throw `CONFIG_INVALID` naming the variable before anything is served.
 */
export async function runMcpV2StdioServer(options: RunMcpV2StdioOptions): Promise<RunningMcpV2StdioServer> {
  if (typeof options?.appName !== 'string' || options.appName === '')
    throw new TypeError('runMcpV2StdioServer: appName is required');
  const rawEnv = options.env ?? process.env;
  const env = authSecOptionsFromEnv(rawEnv);
  const tools = options.tools ?? [];
  let server: ProtectedMcpServer | undefined;
  const defaults = await openDefaults({
    appName: options.appName,
    tools,
    env,
    rawEnv,
    transport: 'stdio',
    resourceUrl: env.audience,
    host: env.host,
    clientId: options.clientId ?? env.clientId,
    clientSecret: options.clientSecret ?? env.clientSecret,
    login: true,
    crossProcess: true,
    scopes: () => server?.scopesSupported ?? [],
  });
  let handle: ProtectedStdioHandle | undefined;
  try {
    const info: Implementation = { name: options.appName, version: options.version ?? '0.0.0' };
    const services = options.services ?? defaults.services;
    server = protect(defaults.authsec, info, {
      services,
      ...(options.serverOptions === undefined ? {} : { serverOptions: options.serverOptions }),
    });
    declareTools(server, tools, {
      connectionId: STDIO_CONNECTION_ID,
      sessionIdFor: (id) => defaults.login?.sessionIdFor(id),
    });
    options.declare?.(server);
    handle = await serveProtectedStdio(server, {
      ...(defaults.login === undefined ? {} : { login: defaults.login }),
      ...(options.legacy === undefined ? {} : { legacy: options.legacy }),
      directory: defaults.storage.directory,
      transport: new StdioServerTransport(options.stdio?.stdin, options.stdio?.stdout),
      onerror: (error) =>
        defaults.authsec.logger.warn('The stdio entry reported an error', { cause: String(error) }),
    });
  } catch (error) {
    await defaults.close();
    throw error;
  }
  const logger = defaults.authsec.logger;
  const protectedServer = server;
  const served = handle;
  let closing: Promise<void> | undefined;
  let dispose = (): void => {};
  const close = (): Promise<void> => {
    closing ??= (async () => {
      dispose();
      await served.close().catch(() => {});
      await defaults.close();
    })();
    return closing;
  };
  const ending = createShutdown({
    logger,
    close,
    closing: () => closing !== undefined,
    handleSignals: options.handleSignals !== false,
    exitOnClose: options.exitOnClose ?? options.stdio === undefined,
  });
  dispose = ending.dispose;
  void served.closed.then(() => ending.shutdown('stdin closed'));
  logger.info(`${options.appName} is serving MCP on stdio (SDK v2, both eras)`, {});
  return { server: protectedServer, closed: served.closed.then(() => closing), close };
}
