/**
 * @authsec/fastify: the MCP authorization spec on Fastify 5. Only translation lives here: the resource server
 * (metadata, bearer challenges, origin rules, step-up) is `createResourceServer` of `@authsec/core`, the MCP
 * endpoint is `createMcpEndpoint` of `@authsec/mcp`.
 *
 * @packageDocumentation
 */

import {
  createResourceServer,
  type ResourceAuthInfo,
  type ResourceServer,
  type ResourceServerOptions,
} from '@authsec/core';
import {
  createMcpEndpoint,
  type McpAdapterOptions,
  type McpEndpoint,
  sendResourceMetadata,
} from '@authsec/mcp';
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

/** A resource server, or the options to create one. */
export type ResourceServerInput = ResourceServer | ResourceServerOptions;

function resolve(input: ResourceServerInput): ResourceServer {
  if (typeof input !== 'object' || input === null)
    throw new TypeError('@authsec/fastify: a resource server or its options are required');
  const isServer = typeof (input as ResourceServer).challenge === 'function' && 'metadataPaths' in input;
  return isServer ? (input as ResourceServer) : createResourceServer(input as ResourceServerOptions);
}

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
 * The routes answered on the raw `node:http` objects, in an encapsulated context without Fastify's body parsers
 * (the body stays unread for the endpoint, which limits and parses it itself).
 */
async function rawRoutes(
  fastify: FastifyInstance,
  { resourceServer: rs, endpoint }: { resourceServer: ResourceServer; endpoint?: McpEndpoint },
): Promise<void> {
  fastify.removeAllContentTypeParsers();
  fastify.addContentTypeParser('*', (_request, _payload, done) => done(null));
  for (const path of rs.metadataPaths) {
    fastify.all(path, (request, reply) => {
      reply.hijack();
      sendResourceMetadata(request.raw, reply.raw, rs);
    });
  }
  if (endpoint === undefined) return;
  fastify.all(rs.mcpPath, (request, reply) => {
    reply.hijack();
    return endpoint(request.raw, reply.raw);
  });
}

/**
 * The whole MCP endpoint as a Fastify plugin (wrapped with `fastify-plugin`, so `fastify.authsec`, the
 * `request.auth` decoration and the routes reach the application): metadata documents (path and root form),
 * health, and `POST`/`GET`/`DELETE` on the resource URL's path with the SDK's Streamable HTTP transport. The
 * MCP routes live in their own encapsulated context without Fastify's body parsers: the endpoint reads the raw
 * body itself (its limit gives 413, malformed JSON a JSON-RPC 400). Sessions are closed when Fastify closes.
 * Bad configuration fails `register` (and so `ready`/`listen`).
 */
export const authSecPlugin = fp<AuthSecPluginOptions>(
  async (fastify: FastifyInstance, options: AuthSecPluginOptions) => {
    const { server, stateless, allowToolLogin, maxBodyBytes, sessionIdleTimeoutMs, healthPaths, ...rest } =
      options;
    if (typeof server?.createServer !== 'function')
      throw new TypeError('authSecPlugin: server must come from createAuthSecServer()');
    const rs = createResourceServer({
      ...rest,
      scopesSupported: options.scopesSupported ?? server.scopesSupported,
      resourceName: options.resourceName ?? server.name,
    });
    const endpoint = createMcpEndpoint({
      server,
      resourceServer: rs,
      stateless: stateless === true,
      allowToolLogin: allowToolLogin === true,
      ...(maxBodyBytes === undefined ? {} : { maxBodyBytes }),
      ...(sessionIdleTimeoutMs === undefined ? {} : { sessionIdleTimeoutMs }),
    });
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
    if (healthPaths !== false) {
      const paths = healthPaths ?? { live: '/healthz', ready: '/readyz' };
      fastify.get(paths.live, async () => rs.health());
      fastify.get(paths.ready, async () => rs.ready());
    }
    await fastify.register(rawRoutes, { resourceServer: rs, endpoint });
  },
  { fastify: '5.x', name: '@authsec/fastify' },
);

/**
 * Serves only the RFC 9728 metadata of `resourceServer` (both forms), for applications that guard their own
 * routes with {@link requireAuthSec} and serve no MCP endpoint.
 */
export const authSecMetadataPlugin = fp<{ readonly resourceServer: ResourceServerInput }>(
  async (fastify, options) => {
    await fastify.register(rawRoutes, { resourceServer: resolve(options.resourceServer) });
  },
  { fastify: '5.x', name: '@authsec/fastify/metadata' },
);

export type { ResourceAuthInfo, ResourceServer, ResourceServerOptions } from '@authsec/core';
