/**
 * The Express mount of this app, importable on its own (no side effects): `main.ts` runs it on the `AUTHSEC_*`
 * configuration, and the conformance runs (`packages/conformance-runs`) run the official MCP suite against it.
 */
import { authSecMcpRouter } from '@authsec/express';
import { createAuthSecServer } from '@authsec/mcp';
import type { SampleHttpContext, SampleHttpMount } from '@authsec/sample-tools';
import express from 'express';

/** The server name clients see. */
export const APP_NAME = 'AuthSec Express demo';

/**
 * Serves `context.tools` on Express 5 through `authSecMcpRouter`: MCP at the resource URL's path, its metadata
 * at `/.well-known/oauth-protected-resource/mcp`. Closing it closes the sessions and the MCP server (and the
 * engine with it).
 */
export async function mountExpressApp(context: SampleHttpContext): Promise<SampleHttpMount> {
  // The rest of the context (tools, engine, services, directory) is exactly what the MCP server takes.
  const { http, resourceUrl, issuers, ...served } = context;
  const server = createAuthSecServer({ name: APP_NAME, version: '0.1.0', ...served });
  const mcp = authSecMcpRouter({
    server,
    authsec: served.authsec,
    resourceUrl,
    authorizationServers: issuers,
  });
  const app = express();
  app.disable('x-powered-by');
  // The fast path: MCP requests are answered before Express (which swaps every request's prototype, a quarter
  // of a tools/call's cost); everything else reaches `app`. `app.use(mcp)` serves the same routes as middleware.
  http.on('request', mcp.listener(app));
  return {
    async close() {
      await mcp.close().catch(() => {});
      await server.close();
    },
  };
}
