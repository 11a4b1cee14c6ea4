#!/usr/bin/env node
/**
 * The sample tool set over Streamable HTTP on NestJS (Express platform) through `AuthSecModule` of
 * `@authsec/nestjs`, as an OAuth protected resource (the MCP authorization spec): MCP at `/mcp`, its metadata at
 * `/.well-known/oauth-protected-resource/mcp`, and a REST route guarded by `@RequireAuth()` at `/api/me`. With
 * nothing configured it runs on embedded development defaults (a local OAuth server, PGlite and the demo tenant);
 * the `AUTHSEC_*` variables point it at real ones.
 */
import { runSampleHttpApp } from '@authsec/sample-tools';
import { APP_NAME, mountNestApp } from './app.js';

await runSampleHttpApp({
  appName: APP_NAME,
  binName: 'authsec-nestjs-demo',
  mount: (context) => mountNestApp(context, 'express'),
  defaultPort: 3002,
});
