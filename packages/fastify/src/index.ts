/**
 * @authsec/fastify: the MCP authorization spec on Fastify 5. Only translation lives here: the resource server
 * (metadata, bearer challenges, origin rules, step-up) is `createResourceServer` of `@authsec/core`, the MCP
 * endpoint is `createMcpEndpoint` of `@authsec/mcp`.
 *
 * @packageDocumentation
 */

import {
  applicationLogger,
  type ResourceAuthInfo,
  type ResourceServer,
  type ResourceServerInput,
  toResourceServer,
  useApplicationLogger,
} from '@authsec/core';
import { createMcpAdapter, createMcpRoutes, type McpAdapterOptions, type McpRoutes } from '@authsec/mcp';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import fp from 'fastify-plugin';

declare module 'fastify' {
  interface FastifyRequest {
    /**
     * The verified caller in the MCP SDK's `AuthInfo` shape, set by {@link requireAuthSec}; `extra.principal` is
     * the AuthSec principal. `undefined` on routes without the hook.
     */
    auth?: ResourceAuthInfo;
  }
  interface FastifyInstance {
    /** Set by {@link authSecPlugin}. */
    authsec: AuthSecFastify;
  }
}

const resolve = (input: ResourceServerInput): ResourceServer => toResourceServer(input, '@authsec/fastify');

/** An `onRequest` / `preHandler` hook (see {@link requireAuthSec}). */
export type AuthSecHook = (request: FastifyRequest, reply: FastifyReply) => Promise<FastifyReply | undefined>;

/**
 * A hook that requires a valid bearer token on the routes it guards (`{ onRequest: requireAuthSec(rs) }`) and
 * sets `request.auth` (`{ token, clientId, scopes, expiresAt, resource, extra: { principal } }`). Refusals are
 * answered by the resource server: 401 with an RFC 6750 challenge naming the metadata, 503 when a dependency is
 * unreachable; a bad token is never a 500.
 */
export function requireAuthSec(resourceServer: ResourceServerInput): AuthSecHook {
  const rs = resolve(resourceServer);
  return async (request, reply) => {
    const headers = { authorization: request.headers.authorization };
    try {
      request.auth = rs.authInfo(await rs.authenticate(headers), headers);
      return undefined;
    } catch (error) {
      const refusal = rs.challenge(error);
      // Returning the reply ends the hook chain: the route handler does not run.
      return reply
        .code(refusal.status)
        .headers({ 'cache-control': 'no-store', ...refusal.headers })
        .send(refusal.body);
    }
  };
}

/**
 * Options of {@link authSecPlugin}: the adapters' common options (`maxBodyBytes` applies here, not Fastify's
 * `bodyLimit`: the MCP routes read their own bodies).
 */
export type AuthSecPluginOptions = McpAdapterOptions;

/** `fastify.authsec`, decorated by {@link authSecPlugin}. */
export interface AuthSecFastify {
  /** The resource server behind the plugin. */
  readonly resourceServer: ResourceServer;
  /** {@link requireAuthSec} on the plugin's resource server: `{ onRequest: fastify.authsec.requireAuth }`. */
  readonly requireAuth: AuthSecHook;
  /** The number of live MCP sessions. */
  readonly sessionCount: number;
}

/**
 * The routes answered on the raw `node:http` objects. They answer in their `onRequest` hook (after the
 * application's own `onRequest` hooks), hijacking the reply: Fastify then skips body parsing, validation and the
 * handler, and the body stays unread for the endpoint, which limits and parses it itself. The encapsulated
 * context without body parsers is a second guard in case a hook ahead of ours let the request through.
 */
async function rawRoutes(fastify: FastifyInstance, { routes }: { routes: McpRoutes }): Promise<void> {
  fastify.removeAllContentTypeParsers();
  fastify.addContentTypeParser('*', (_request, _payload, done) => done(null));
  for (const path of routes.paths) {
    fastify.all(path, {
      onRequest(request: FastifyRequest, reply: FastifyReply, done: () => void) {
        reply.hijack();
        routes(request.raw, reply.raw, path);
        done();
      },
      // Not reached: the hijacked reply ends the lifecycle after onRequest.
      handler() {},
    });
  }
}

/**
 * The whole MCP endpoint as a Fastify plugin (wrapped with `fastify-plugin`, so `fastify.authsec`, the
 * `request.auth` decoration and the routes reach the application): metadata documents (path and root form),
 * health, and `POST`/`GET`/`DELETE` on the resource URL's path with the SDK's Streamable HTTP transport. The
 * MCP routes answer on the raw objects from their `onRequest` hook, before Fastify's body parsing: the endpoint
 * reads the raw body itself (its limit gives 413, malformed JSON a JSON-RPC 400). Sessions are closed when Fastify closes.
 * Bad configuration fails `register` (and so `ready`/`listen`). An engine created without a `logger` logs through
 * `fastify.log` once registered.
 */
export const authSecPlugin = fp<AuthSecPluginOptions>(
  async (fastify: FastifyInstance, options: AuthSecPluginOptions) => {
    const { resourceServer: rs, endpoint, routes } = createMcpAdapter(options, 'authSecPlugin');
    // An engine created without a `logger` logs through the application's pino logger from now on.
    useApplicationLogger(rs, applicationLogger(fastify.log));
    // preClose, not only onClose: open GET streams would otherwise keep the HTTP server from closing.
    fastify.addHook('preClose', () => endpoint.close());
    fastify.addHook('onClose', () => endpoint.close());
    fastify.decorateRequest('auth', undefined);
    fastify.decorate('authsec', {
      resourceServer: rs,
      requireAuth: requireAuthSec(rs),
      get sessionCount() {
        return endpoint.sessionCount;
      },
    } satisfies AuthSecFastify);
    await fastify.register(rawRoutes, { routes });
  },
  { fastify: '5.x', name: '@authsec/fastify' },
);

/**
 * Serves only the RFC 9728 metadata of `resourceServer` (both forms), for applications that guard their own
 * routes with {@link requireAuthSec} and serve no MCP endpoint.
 */
export const authSecMetadataPlugin = fp<{ readonly resourceServer: ResourceServerInput }>(
  async (fastify, options) => {
    const routes = createMcpRoutes({ resourceServer: resolve(options.resourceServer), healthPaths: false });
    await fastify.register(rawRoutes, { routes });
  },
  { fastify: '5.x', name: '@authsec/fastify/metadata' },
);

export type {
  ResourceAuthInfo,
  ResourceServer,
  ResourceServerInput,
  ResourceServerOptions,
} from '@authsec/core';
