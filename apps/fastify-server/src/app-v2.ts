/**
 * The Fastify mount of this app on the MCP SDK v2 (both protocol eras at `/mcp`), importable on its own (no side
 * effects): `main.ts` runs it on the `AUTHSEC_*` configuration, and the conformance runs run the official MCP
 * suite against it. `app.ts` is the same app on the v1 SDK line.
 */
import { authSecPlugin } from '@authsec/fastify/v2';
import type { SampleHttpContext, SampleHttpMount } from '@authsec/sample-tools';
import { protectSampleServer, type SampleV2Options } from '@authsec/sample-tools/v2';
import Fastify from 'fastify';
import { APP_NAME } from './app.js';

export { APP_NAME };

/**
 * Serves `context.tools` on Fastify 5 through `authSecPlugin` of `@authsec/fastify/v2`: MCP at the resource URL's
 * path, its metadata at `/.well-known/oauth-protected-resource/mcp`, and `GET /api/me` guarded by the plugin's
 * `requireAuth` hook. The application's own hooks and plugins, registered before it, run on every route.
 */
export async function mountFastifyV2App(
  context: SampleHttpContext,
  options: SampleV2Options = {},
): Promise<SampleHttpMount> {
  const { http, resourceUrl, issuers, authsec } = context;
  const server = protectSampleServer(context, APP_NAME, options);
  // Fastify serves on the server that is already listening (its port is in the resource URL).
  const app = Fastify({
    serverFactory: (handler) => {
      http.on('request', handler);
      return http;
    },
  });
  await app.register(authSecPlugin, { server, authsec, resourceUrl, authorizationServers: issuers });
  // An ordinary REST route behind the same bearer checks as MCP: who the token says the caller is.
  app.get('/api/me', { preHandler: app.authsec.requireAuth }, async (request) => {
    const principal = request.auth?.extra.principal;
    return { subject: principal?.subject, tenant: principal?.tenantId };
  });
  await app.ready();
  return {
    async close() {
      await app.close().catch(() => {});
      await authsec.close();
    },
  };
}
