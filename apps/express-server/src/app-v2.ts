/**
 * The Express mount of this app on the MCP SDK v2 (both protocol eras at `/mcp`), importable on its own (no side
 * effects): `main.ts` runs it on the `AUTHSEC_*` configuration, and the conformance runs run the official MCP
 * suite against it. `app.ts` is the same app on the v1 SDK line.
 */

import type { Principal } from '@authsec/core';
import { type AuthSecRequest, authSecMcpRouter } from '@authsec/express/v2';
import type { SampleHttpContext, SampleHttpMount } from '@authsec/sample-tools';
import { protectSampleServer, type SampleV2Options } from '@authsec/sample-tools/v2';
import express from 'express';
import { APP_NAME } from './app.js';

export { APP_NAME };

/**
 * Serves `context.tools` on Express 5 through `authSecMcpRouter` of `@authsec/express/v2`, mounted with
 * `app.use()` after the application's own middleware: MCP at the resource URL's path, its metadata at
 * `/.well-known/oauth-protected-resource/mcp`, and `GET /api/me` guarded by `requireAuthSec()`.
 */
export async function mountExpressV2App(
  context: SampleHttpContext,
  options: SampleV2Options = {},
): Promise<SampleHttpMount> {
  const { http, resourceUrl, issuers, authsec } = context;
  const server = protectSampleServer(context, APP_NAME, options);
  const mcp = authSecMcpRouter({ server, authsec, resourceUrl, authorizationServers: issuers });
  const app = express();
  app.disable('x-powered-by');
  app.use(mcp);
  // An ordinary REST route behind the same bearer checks as MCP: who the token says the caller is.
  app.get('/api/me', mcp.requireAuthSec(), (req: AuthSecRequest, res) => {
    const principal = req.auth?.extra?.principal as Principal | undefined;
    res.json({ subject: principal?.subject, tenant: principal?.tenantId });
  });
  http.on('request', app);
  return {
    async close() {
      await mcp.close().catch(() => {});
      await authsec.close();
    },
  };
}
