#!/usr/bin/env node
/**
 * The sample tool set over Streamable HTTP on Fastify 5, as an OAuth protected resource (the MCP authorization
 * spec): MCP at `/mcp`, its metadata at `/.well-known/oauth-protected-resource/mcp`. With nothing configured it
 * runs on embedded development defaults (a local OAuth server, PGlite and the demo tenant); the `AUTHSEC_*`
 * variables point it at real ones.
 */
import { createServer, type Server } from 'node:http';
import { authSecOptionsFromEnv, isAuthSecError } from '@authsec/core';
import { authSecPlugin } from '@authsec/fastify';
import { createAuthSecServer, type Defaults, openDefaults } from '@authsec/mcp';
import { createSampleTools } from '@authsec/sample-tools';
import Fastify from 'fastify';

const APP_NAME = 'AuthSec Fastify demo';
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
  // Bind first: with PORT=0 the resource URL (the token audience) names the port the system chose. Fastify then
  // serves on this server (serverFactory) once it is ready.
  const http = createServer();
  const port = await listen(http, env.port ?? 3000, host);
  let defaults: Defaults | undefined;
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
    const server = createAuthSecServer({
      name: APP_NAME,
      version: VERSION,
      tools,
      authsec: defaults.authsec,
      services: defaults.services,
      directory: defaults.storage.directory,
    });
    const app = Fastify({
      serverFactory: (handler) => {
        http.on('request', handler);
        return http;
      },
    });
    await app.register(authSecPlugin, {
      server,
      authsec: defaults.authsec,
      resourceUrl,
      authorizationServers: defaults.issuers,
    });
    await app.ready();

    const opened = defaults;
    let shuttingDown = false;
    const shutdown = (signal: NodeJS.Signals): void => {
      if (shuttingDown) return;
      shuttingDown = true;
      void (async () => {
        process.stderr.write(`${APP_NAME}: ${signal}, shutting down\n`);
        await app.close().catch(() => {});
        await closeServer(http);
        await server.close().catch(() => {});
        await opened.close();
        process.exit(0);
      })();
    };
    process.once('SIGINT', shutdown);
    process.once('SIGTERM', shutdown);
    process.stderr.write(`${APP_NAME} is serving MCP at ${resourceUrl} (listening on ${host}:${port})\n`);
  } catch (error) {
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
    `authsec-fastify-demo: ${isAuthSecError(error) ? error.message : String((error as Error)?.stack ?? error)}\n`,
  );
  process.exit(1);
}
