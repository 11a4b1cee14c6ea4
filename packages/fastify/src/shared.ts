/**
 * What both entries of `@authsec/fastify` (the v1 SDK line and `./v2`) do with Fastify, written once. It names no
 * MCP SDK and no `@authsec/mcp` entry (each entry loads only its own SDK line): the adapter comes in from the
 * entry.
 */

import type { IncomingMessage, ServerResponse } from 'node:http';
import {
  applicationLogger,
  type RequirementInput,
  type ResourceAuthInfo,
  type ResourceServer,
  type ResourceServerInput,
  toResourceServer,
  useApplicationLogger,
} from '@authsec/core';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';

declare module 'fastify' {
  interface FastifyRequest {
    /**
     * The verified caller in the MCP SDK's `AuthInfo` shape, set by `requireAuthSec`; `extra.principal` is the
     * AuthSec principal. `undefined` on routes without the hook.
     */
    auth?: ResourceAuthInfo;
  }
  interface FastifyInstance {
    /** Set by `authSecPlugin`. */
    authsec: AuthSecFastify;
  }
}

/** An `onRequest` / `preHandler` hook (see {@link requireAuthSec}). */
export type AuthSecHook = (request: FastifyRequest, reply: FastifyReply) => Promise<FastifyReply | undefined>;

/** `fastify.authsec`, decorated by `authSecPlugin`. */
export interface AuthSecFastify {
  /** The resource server behind the plugin. */
  readonly resourceServer: ResourceServer;
  /** {@link requireAuthSec} on the plugin's resource server, without a requirement: `{ preHandler: fastify.authsec.requireAuth }`. */
  readonly requireAuth: AuthSecHook;
  /** {@link requireAuthSec} on the plugin's resource server with a requirement (as a tool's). */
  require(requirement?: RequirementInput): AuthSecHook;
  /** The number of live MCP sessions (the 2025 era's). */
  readonly sessionCount: number;
}

/** An entry's MCP adapter (`createMcpAdapter` / `createMcpV2Adapter` of `@authsec/mcp`), structurally. */
export interface EntryAdapter {
  readonly resourceServer: ResourceServer;
  readonly endpoint: { readonly sessionCount: number; close(): Promise<void> };
  readonly routes: Routes;
}

/** AuthSec's routes (`McpRoutes` of `@authsec/mcp`), structurally. */
export interface Routes {
  (req: IncomingMessage, res: ServerResponse, path?: string): boolean;
  readonly paths: readonly string[];
}

/**
 * A hook that requires a valid bearer token on the routes it guards (`{ preHandler: requireAuthSec(rs) }`) and,
 * with a `requirement` (as a tool's), that the caller satisfies it, audited under the route. Sets
 * `request.auth` (`{ token, clientId, scopes, expiresAt, resource, extra: { principal } }`). Refusals are the
 * resource server's answers, as on MCP: 401 with an RFC 6750 challenge naming the metadata, 403
 * (`insufficient_scope` naming the scopes to get, when more scopes would do), 503 when a dependency is
 * unreachable; a bad token is never a 500. A bad requirement is a `TypeError` here.
 */
export function requireAuthSec(
  resourceServer: ResourceServerInput,
  requirement?: RequirementInput,
): AuthSecHook {
  const rs = toResourceServer(resourceServer, '@authsec/fastify');
  const guard = rs.guard(requirement);
  return async (request, reply) => {
    try {
      // The audit record names the route, never its query (which may carry anything).
      request.auth = await guard(
        request.headers,
        `${request.method} ${request.routeOptions.url ?? request.url}`,
      );
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
 * The routes, each an ordinary Fastify route in an encapsulated context: the application's hooks and plugins
 * (`onRequest`, `preParsing`, `preValidation`, `preHandler`: CORS, helmet, rate limits, logging) run on them in
 * their order. The context has no body parser that reads: the endpoint reads, limits (413) and parses (a
 * JSON-RPC 400) the raw body itself. The handler hands the raw objects to the endpoint, with the headers the
 * hooks set on the reply copied onto the raw response first (a hijacked reply would otherwise drop them);
 * `onSend` hooks do not run on these routes (the endpoint streams its answers).
 */
async function nodeRoutes(fastify: FastifyInstance, { routes }: { routes: Routes }): Promise<void> {
  fastify.removeAllContentTypeParsers();
  fastify.addContentTypeParser('*', (_request, _payload, done) => done(null));
  for (const path of routes.paths) {
    fastify.all(path, (request, reply) => {
      for (const [name, value] of Object.entries(reply.getHeaders()))
        if (value !== undefined) reply.raw.setHeader(name, value);
      reply.hijack();
      routes(request.raw, reply.raw, path);
    });
  }
}

/**
 * The body of both entries' `authSecPlugin`: `fastify.authsec`, the `request.auth` decoration, the routes, the
 * engine logging through `fastify.log` (when created without a `logger`), the endpoint closed with Fastify.
 */
export async function registerAdapter(fastify: FastifyInstance, adapter: EntryAdapter): Promise<void> {
  const { resourceServer: rs, endpoint, routes } = adapter;
  useApplicationLogger(rs, applicationLogger(fastify.log));
  // preClose, not only onClose: open GET streams would otherwise keep the HTTP server from closing.
  fastify.addHook('preClose', () => endpoint.close());
  fastify.addHook('onClose', () => endpoint.close());
  fastify.decorateRequest('auth', undefined);
  fastify.decorate('authsec', {
    resourceServer: rs,
    requireAuth: requireAuthSec(rs),
    require: (requirement?: RequirementInput) => requireAuthSec(rs, requirement),
    get sessionCount() {
      return endpoint.sessionCount;
    },
  } satisfies AuthSecFastify);
  await fastify.register(nodeRoutes, { routes });
}

/** The body of both entries' `authSecMetadataPlugin`: only the metadata routes. */
export function registerRoutes(fastify: FastifyInstance, routes: Routes): Promise<void> {
  return fastify.register(nodeRoutes, { routes }) as unknown as Promise<void>;
}
