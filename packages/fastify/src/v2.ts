/**
 * @authsec/fastify/v2: AuthSec for Fastify 5 on the MCP SDK v2 (`@modelcontextprotocol/server` 2.x), both
 * protocol eras at one path. Only translation lives here: the request pipeline, the resource server and the
 * endpoint are `createMcpV2Adapter` of `@authsec/mcp/v2`; this entry never loads the v1 SDK.
 *
 * @packageDocumentation
 */

import { createMcpV2Adapter, type McpV2HttpHandlerOptions } from '@authsec/mcp/v2';
import type { FastifyInstance } from 'fastify';
import fp from 'fastify-plugin';
import { type Routes, registerAdapter, registerRoutes } from './shared.js';

export { type AuthSecFastify, type AuthSecHook, requireAuthSec } from './shared.js';

/**
 * Options of {@link authSecPlugin}: the v2 adapters' common options with the protected server (`maxBodyBytes`
 * applies here, not Fastify's `bodyLimit`: the MCP routes read their own bodies).
 */
export type AuthSecPluginOptions = Omit<McpV2HttpHandlerOptions, 'fallback'>;

/**
 * The whole MCP endpoint as a Fastify plugin (wrapped with `fastify-plugin`, so `fastify.authsec`, the
 * `request.auth` decoration and the routes reach the application): the RFC 9728 metadata documents, health, and
 * the endpoint serving the 2026-07-28 era and the 2025 legacy era at the resource URL's path, through core's
 * request pipeline. Register it after the application's own plugins and hooks (@fastify/helmet, @fastify/cors,
 * @fastify/rate-limit): they run on the MCP routes too, and the headers they set are on every MCP answer.
 * Sessions and listen streams close with Fastify. Bad configuration fails `register` (and so `ready`/`listen`).
 */
export const authSecPlugin = fp<AuthSecPluginOptions>(
  async (fastify: FastifyInstance, options: AuthSecPluginOptions) =>
    registerAdapter(fastify, createMcpV2Adapter(options, 'authSecPlugin')),
  { fastify: '5.x', name: '@authsec/fastify/v2' },
);

/**
 * AuthSec's routes (the `routes` of `createMcpV2Adapter` of `@authsec/mcp/v2`) as ordinary Fastify routes in an
 * encapsulated context of `fastify`: the hooks and plugins registered before run on them, and the headers they
 * set reach every answer. For hosts that build the adapter themselves (`@authsec/nestjs/v2` on Fastify);
 * applications register {@link authSecPlugin}.
 */
export function registerAuthSecRoutes(fastify: FastifyInstance, routes: Routes): Promise<void> {
  return registerRoutes(fastify, routes);
}

export type {
  ResourceAuthInfo,
  ResourceServer,
  ResourceServerInput,
  ResourceServerOptions,
} from '@authsec/core';
