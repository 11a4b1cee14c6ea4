#!/usr/bin/env node
/**
 * The sample tool set over Streamable HTTP on NestJS through `AuthSecModule` of `@authsec/nestjs/v2` (both
 * protocol eras), as an OAuth protected resource (the MCP authorization spec): MCP at `/mcp`, its metadata at
 * `/.well-known/oauth-protected-resource/mcp`, and a REST route guarded by `@RequireAuth()` at `/api/me`. The
 * Nest platform is `AUTHSEC_NEST_PLATFORM` (`express`, the default, or `fastify`). With nothing configured it
 * runs on embedded development defaults (a local OAuth server, PGlite and the demo tenant); the `AUTHSEC_*`
 * variables point it at real ones.
 */
import { runSampleHttpApp } from '@authsec/sample-tools';
import { APP_NAME, mountNestV2App, NEST_PLATFORMS, type NestPlatform } from './app-v2.js';

const chosen = process.env.AUTHSEC_NEST_PLATFORM ?? 'express';
if (!NEST_PLATFORMS.includes(chosen as NestPlatform)) {
  process.stderr.write(
    `authsec-nestjs-demo: AUTHSEC_NEST_PLATFORM must be one of ${NEST_PLATFORMS.join(', ')} (got ${JSON.stringify(chosen)})\n`,
  );
  process.exit(2);
}

await runSampleHttpApp({
  appName: APP_NAME,
  binName: 'authsec-nestjs-demo',
  mount: (context) => mountNestV2App(context, chosen as NestPlatform),
  defaultPort: 3002,
});
