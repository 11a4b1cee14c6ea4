/**
 * @authsec/fastify: the MCP authorization spec on Fastify 5, on the MCP SDK v1 line (`./v2`: the v2 SDK, both
 * protocol eras). Only translation lives here: the resource server (metadata, bearer challenges, origin rules,
 * step-up) is `createResourceServer` of `@authsec/core`, the MCP endpoint is `createMcpEndpoint` of
 * `@authsec/mcp`.
 *
 * @packageDocumentation
 */

import { type ResourceServerInput, toResourceServer } from '@authsec/core';
import { createMcpAdapter, createMcpRoutes, type McpAdapterOptions } from '@authsec/mcp';
import type { FastifyInstance } from 'fastify';
import fp from 'fastify-plugin';
import { registerAdapter, registerRoutes } from './shared.js';

export { type AuthSecFastify, type AuthSecHook, requireAuthSec } from './shared.js';

/**
 * Options of {@link authSecPlugin}: the adapters' common options (`maxBodyBytes` applies here, not Fastify's
 * `bodyLimit`: the MCP routes read their own bodies).
 */
export type AuthSecPluginOptions = McpAdapterOptions;

/**
 * The whole MCP endpoint as a Fastify plugin (wrapped with `fastify-plugin`, so `fastify.authsec`, the
 * `request.auth` decoration and the routes reach the application): metadata documents (path and root form),
 * health, and `POST`/`GET`/`DELETE` on the resource URL's path with the SDK's Streamable HTTP transport. The
 * application's hooks run on these routes as on its own; the endpoint reads the raw body itself (its limit gives
 * 413, malformed JSON a JSON-RPC 400). Sessions are closed when Fastify closes. Bad configuration fails
 * `register` (and so `ready`/`listen`). An engine created without a `logger` logs through `fastify.log`.
 */
export const authSecPlugin = fp<AuthSecPluginOptions>(
  async (fastify: FastifyInstance, options: AuthSecPluginOptions) =>
    registerAdapter(fastify, createMcpAdapter(options, 'authSecPlugin')),
  { fastify: '5.x', name: '@authsec/fastify' },
);

/**
 * Serves only the RFC 9728 metadata of `resourceServer` (both forms), for applications that guard their own
 * routes with {@link requireAuthSec} and serve no MCP endpoint.
 */
export const authSecMetadataPlugin = fp<{ readonly resourceServer: ResourceServerInput }>(
  async (fastify, options) =>
    registerRoutes(
      fastify,
      createMcpRoutes({
        resourceServer: toResourceServer(options.resourceServer, '@authsec/fastify'),
        healthPaths: false,
      }),
    ),
  { fastify: '5.x', name: '@authsec/fastify/metadata' },
);

export type {
  ResourceAuthInfo,
  ResourceServer,
  ResourceServerInput,
  ResourceServerOptions,
} from '@authsec/core';
