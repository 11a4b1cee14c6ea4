/**
 * The Fastify mount of this app, importable on its own (no side effects): `main.ts` runs it on the `AUTHSEC_*`
 * configuration, and the conformance runs (`packages/conformance-runs`) run the official MCP suite against it.
 */
import { authSecPlugin } from '@authsec/fastify';
import { createAuthSecServer } from '@authsec/mcp';
import type { SampleHttpContext, SampleHttpMount } from '@authsec/sample-tools';
import Fastify from 'fastify';

/** The server name clients see. */
export const APP_NAME = 'AuthSec Fastify demo';

/**
 * Serves `context.tools` on Fastify 5 through `authSecPlugin`: MCP at the resource URL's path, its metadata at
 * `/.well-known/oauth-protected-resource/mcp`. Closing it closes the sessions and the MCP server (and the engine
 * with it).
 */
export async function mountFastifyApp(context: SampleHttpContext): Promise<SampleHttpMount> {
  // The rest of the context (tools, engine, services, directory) is exactly what the MCP server takes.
  const { http, resourceUrl, issuers, ...served } = context;
  const server = createAuthSecServer({ name: APP_NAME, version: '0.1.0', ...served });
  // Fastify serves on the server that is already listening (its port is in the resource URL).
  const app = Fastify({
    serverFactory: (handler) => {
      http.on('request', handler);
      return http;
    },
  });
  await app.register(authSecPlugin, {
    server,
    authsec: served.authsec,
    resourceUrl,
    authorizationServers: issuers,
  });
  await app.ready();
  return {
    async close() {
      await app.close().catch(() => {});
      await server.close();
    },
  };
}
