#!/usr/bin/env node
/**
 * The sample tool set over Streamable HTTP on NestJS (Express platform) through `AuthSecModule` of
 * `@authsec/nestjs`, as an OAuth protected resource (the MCP authorization spec): MCP at `/mcp`, its metadata at
 * `/.well-known/oauth-protected-resource/mcp`, and a REST route guarded by `@RequireAuth()` at `/api/me`. With
 * nothing configured it runs on embedded development defaults (a local OAuth server, PGlite and the demo tenant);
 * the `AUTHSEC_*` variables point it at real ones.
 */
import 'reflect-metadata';
import { createServer, type Server } from 'node:http';
import { authSecOptionsFromEnv, isAuthSecError } from '@authsec/core';
import { type Defaults, openDefaults } from '@authsec/mcp';
import { createSampleTools } from '@authsec/sample-tools';
import { NestFactory } from '@nestjs/core';
import type { NestExpressApplication } from '@nestjs/platform-express';
import { AppModule } from './app.module.js';

const APP_NAME = 'AuthSec NestJS demo';
const VERSION = '0.1.0';

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

async function main(): Promise<void> {
  const env = authSecOptionsFromEnv(process.env);
  const host = env.host;
  // Bind first: with PORT=0 the resource URL (the token audience) names the port the system chose.
  const http = createServer();
  const port = await listen(http, env.port ?? 3000, host);
  let defaults: Defaults | undefined;
  let app: NestExpressApplication | undefined;
  try {
    const resourceUrl = env.audience ?? `http://${host.includes(':') ? `[${host}]` : host}:${port}/mcp`;
    const tools = createSampleTools();
    defaults = await openDefaults({
      appName: APP_NAME,
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
    app = await NestFactory.create<NestExpressApplication>(
      AppModule.register({
        authsec: defaults.authsec,
        services: defaults.services,
        directory: defaults.storage.directory,
        tools,
        name: APP_NAME,
        version: VERSION,
        resourceUrl,
        authorizationServers: defaults.issuers,
      }),
      // A DI error is thrown (and reported below) instead of aborting the process.
      { abortOnError: false, logger: ['error', 'warn'] },
    );
    app.disable('x-powered-by');
    // Mounts the MCP endpoint ahead of Nest's body parsers (AuthSecMcpService.onModuleInit).
    await app.init();
    // The HTTP server is ours (bound above); Nest's Express instance answers its requests.
    http.on('request', app.getHttpAdapter().getInstance());

    const nest = app;
    const opened = defaults;
    let shuttingDown = false;
    const shutdown = (signal: NodeJS.Signals): void => {
      if (shuttingDown) return;
      shuttingDown = true;
      void (async () => {
        process.stderr.write(`${APP_NAME}: ${signal}, shutting down\n`);
        // Closes the MCP sessions (onModuleDestroy), then the MCP server and the engine (onApplicationShutdown).
        await nest.close().catch(() => {});
        await closeServer(http);
        await opened.close();
        process.exit(0);
      })();
    };
    process.once('SIGINT', shutdown);
    process.once('SIGTERM', shutdown);
    process.stderr.write(`${APP_NAME} is serving MCP at ${resourceUrl} (listening on ${host}:${port})\n`);
  } catch (error) {
    await app?.close().catch(() => {});
    await closeServer(http);
    await defaults?.close();
    throw error;
  }
}

try {
  await main();
} catch (error) {
  // A configuration error names the variable at fault; anything else is a bug, and its stack helps.
  process.stderr.write(
    `authsec-nestjs-demo: ${isAuthSecError(error) ? error.message : String((error as Error)?.stack ?? error)}\n`,
  );
  process.exit(1);
}
