#!/usr/bin/env node
/**
 * The sample tool set over Streamable HTTP on Express 5, as an OAuth protected resource (the MCP authorization
 * spec): MCP at `/mcp`, its metadata at `/.well-known/oauth-protected-resource/mcp`. With nothing configured it
 * runs on embedded development defaults (a local OAuth server, PGlite and the demo tenant); the `AUTHSEC_*`
 * variables point it at real ones.
 */
import { authSecMcpRouter } from '@authsec/express';
import { createAuthSecServer } from '@authsec/mcp';
import { runSampleHttpApp } from '@authsec/sample-tools';
import express from 'express';

const APP_NAME = 'AuthSec Express demo';

await runSampleHttpApp({
  appName: APP_NAME,
  binName: 'authsec-express-demo',
  async mount({ http, resourceUrl, tools, defaults }) {
    const server = createAuthSecServer({
      name: APP_NAME,
      version: '0.1.0',
      tools,
      authsec: defaults.authsec,
      services: defaults.services,
      directory: defaults.storage.directory,
    });
    const mcp = authSecMcpRouter({
      server,
      authsec: defaults.authsec,
      resourceUrl,
      authorizationServers: defaults.issuers,
    });
    const app = express();
    app.disable('x-powered-by');
    app.use(mcp);
    http.on('request', app);
    return {
      async close() {
        await mcp.close().catch(() => {});
        await server.close();
      },
    };
  },
});
