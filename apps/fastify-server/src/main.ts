#!/usr/bin/env node
/**
 * The sample tool set over Streamable HTTP on Fastify 5 and the MCP SDK v2 (both protocol eras at `/mcp`), as an
 * OAuth protected resource (the MCP authorization spec): its metadata at
 * `/.well-known/oauth-protected-resource/mcp`. With nothing configured it runs on embedded development defaults
 * (a local OAuth server, PGlite and the demo tenant); the `AUTHSEC_*` variables point it at real ones.
 */
import { runSampleHttpApp } from '@authsec/sample-tools';
import { APP_NAME, mountFastifyV2App } from './app-v2.js';

await runSampleHttpApp({
  appName: APP_NAME,
  binName: 'authsec-fastify-demo',
  mount: mountFastifyV2App,
  defaultPort: 3001,
});
