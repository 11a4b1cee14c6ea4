import { createServer, type Server } from 'node:http';
import { authSecOptionsFromEnv, isAuthSecError } from '@authsec/core';
import { type AuthSecTool, type Defaults, openDefaults } from '@authsec/mcp';
import { createSampleTools } from './index.js';

/** What a sample HTTP app's framework mount receives. */
export interface SampleHttpContext {
  /** The HTTP server, already listening; the mount attaches its request handler. */
  readonly http: Server;
  /** The canonical MCP URL (the token audience). */
  readonly resourceUrl: string;
  /** The sample tool set. */
  readonly tools: readonly AuthSecTool[];
  /** Engine, storage, services and issuers opened from the `AUTHSEC_*` environment. */
  readonly defaults: Defaults;
}

/** Options of {@link runSampleHttpApp}. */
export interface SampleHttpAppOptions {
  /** Server name, shown to clients and in logs. */
  readonly appName: string;
  /** Command name, prefixed to a start-up error. */
  readonly binName: string;
  /** Mounts the framework on `context.http`; returns how to close it (sessions, MCP server). */
  mount(context: SampleHttpContext): Promise<{ close(): Promise<void> }>;
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

function closeServer(server: Server): Promise<void> {
  if (!server.listening) return Promise.resolve();
  server.closeAllConnections();
  return new Promise((resolve) => server.close(() => resolve()));
}

async function start(options: SampleHttpAppOptions): Promise<void> {
  const env = authSecOptionsFromEnv(process.env);
  const host = env.host;
  // Bind first: with PORT=0 the resource URL (the token audience) names the port the system chose.
  const http = createServer();
  const port = await listen(http, env.port ?? 3000, host);
  let defaults: Defaults | undefined;
  let mounted: { close(): Promise<void> } | undefined;
  try {
    const resourceUrl = env.audience ?? `http://${host.includes(':') ? `[${host}]` : host}:${port}/mcp`;
    const tools = createSampleTools();
    defaults = await openDefaults({
      appName: options.appName,
      tools,
      env,
      rawEnv: process.env,
      transport: 'http',
      resourceUrl,
      host,
      clientId: env.clientId,
      clientSecret: env.clientSecret,
      login: false,
    });
    mounted = await options.mount({ http, resourceUrl, tools, defaults });

    const opened = defaults;
    const mount = mounted;
    let shuttingDown = false;
    const shutdown = (signal: NodeJS.Signals): void => {
      if (shuttingDown) return;
      shuttingDown = true;
      void (async () => {
        process.stderr.write(`${options.appName}: ${signal}, shutting down\n`);
        await mount.close().catch(() => {});
        await closeServer(http);
        await opened.close();
        process.exit(0);
      })();
    };
    process.once('SIGINT', shutdown);
    process.once('SIGTERM', shutdown);
    process.stderr.write(
      `${options.appName} is serving MCP at ${resourceUrl} (listening on ${host}:${port})\n`,
    );
  } catch (error) {
    await mounted?.close().catch(() => {});
    await closeServer(http);
    await defaults?.close();
    throw error;
  }
}

/**
 * Runs a sample HTTP app the way all of them run: the `AUTHSEC_*` contract (embedded development defaults when
 * nothing is configured), the sample tool set, `HOST`/`PORT` (default 127.0.0.1:3000), a clean shutdown on
 * SIGINT/SIGTERM. A start-up error is printed (a configuration error names the variable) and exits 1.
 */
export async function runSampleHttpApp(options: SampleHttpAppOptions): Promise<void> {
  try {
    await start(options);
  } catch (error) {
    // A configuration error names the variable at fault; anything else is a bug, and its stack helps.
    process.stderr.write(
      `${options.binName}: ${isAuthSecError(error) ? error.message : String((error as Error)?.stack ?? error)}\n`,
    );
    process.exit(1);
  }
}
