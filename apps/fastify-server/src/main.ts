#!/usr/bin/env node
/**
 * The sample tool set over Streamable HTTP on Fastify 5, as an OAuth protected resource (the MCP authorization
 * spec): MCP at `/mcp`, its metadata at `/.well-known/oauth-protected-resource/mcp`. With nothing configured it
 * runs on embedded development defaults (a local OAuth server, PGlite and the demo tenant); the `AUTHSEC_*`
 * variables point it at real ones.
 */
import { authSecPlugin } from '@authsec/fastify';
import { createAuthSecServer } from '@authsec/mcp';
import { runSampleHttpApp } from '@authsec/sample-tools';
import Fastify from 'fastify';

const APP_NAME = 'AuthSec Fastify demo';

await runSampleHttpApp({
  appName: APP_NAME,
  binName: 'authsec-fastify-demo',
  async mount({ http, resourceUrl, tools, defaults }) {
    const server = createAuthSecServer({
      name: APP_NAME,
      version: '0.1.0',
      tools,
      authsec: defaults.authsec,
      services: defaults.services,
      directory: defaults.storage.directory,
    });
    // Fastify serves on the server that is already listening (its port is in the resource URL).
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
    return {
      async close() {
        await app.close().catch(() => {});
        await server.close();
      },
    };
  },
});
