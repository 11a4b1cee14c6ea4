/**
 * @authsec/express/v2: AuthSec for Express 5 on the MCP SDK v2 (`@modelcontextprotocol/server` 2.x), both
 * protocol eras at one path. Only translation lives here: the request pipeline, the resource server and the
 * endpoint are `createMcpV2Adapter` of `@authsec/mcp/v2`; this entry never loads the v1 SDK.
 *
 * @packageDocumentation
 */

import {
  type RequirementInput,
  type ResourceServer,
  type ResourceServerInput,
  toResourceServer,
} from '@authsec/core';
import {
  createMcpV2Adapter,
  type McpV2HttpHandlerOptions,
  requestPath,
  sendErrorResponse,
} from '@authsec/mcp/v2';
import type { AuthInfo } from '@modelcontextprotocol/server';
import type { Request, RequestHandler } from 'express';
import { bearerGuard, type EntryKit, routesMiddleware } from './shared.js';

const kit: EntryKit = { requestPath, sendErrorResponse };

/**
 * An Express request behind {@link requireAuthSec} or the MCP router: `auth` is the verified caller in the
 * SDK's `AuthInfo` shape, `auth.extra.principal` the AuthSec principal. (`@modelcontextprotocol/express`
 * declares `req.auth` the same way for every request once imported.)
 */
export type AuthSecRequest = Request & { auth?: AuthInfo };

/** Options of {@link authSecMcpRouter}: the v2 adapters' common options with the protected server. */
export type AuthSecMcpRouterOptions = Omit<McpV2HttpHandlerOptions, 'fallback'>;

/**
 * The middleware of {@link authSecMcpRouter}: it answers its own paths and passes every other request on
 * (`next()`), with the resource server behind it, a guard for ordinary routes and a way to close sessions.
 */
export interface AuthSecMcpRouter extends RequestHandler {
  readonly resourceServer: ResourceServer;
  /** The number of live legacy-era MCP sessions. */
  readonly sessionCount: number;
  /** {@link requireAuthSec} on this router's resource server: the same challenges as the MCP endpoint. */
  requireAuthSec(requirement?: RequirementInput): RequestHandler;
  /** Closes every MCP session and listen stream (call it when the HTTP server stops). */
  close(): Promise<void>;
}

/**
 * The whole MCP endpoint as ordinary Express middleware: the RFC 9728 metadata documents, health, and the
 * endpoint serving the 2026-07-28 era and the 2025 legacy era at the resource URL's path, through core's
 * request pipeline. Mount it with `app.use()` after the application's own middleware (helmet, CORS, logging,
 * rate limits): they run on MCP requests too, in the order mounted. Mount it before any JSON body parser, or
 * after one (a parsed body is used as it is). It matches the request's full path, so the mount path does not
 * matter. Bad configuration throws here.
 */
export function authSecMcpRouter(options: AuthSecMcpRouterOptions): AuthSecMcpRouter {
  const { resourceServer: rs, endpoint, routes } = createMcpV2Adapter(options, 'authSecMcpRouter');
  return Object.defineProperties(routesMiddleware(routes, kit), {
    resourceServer: { value: rs, enumerable: true },
    sessionCount: { get: () => endpoint.sessionCount, enumerable: true },
    requireAuthSec: { value: (requirement?: RequirementInput) => bearerGuard(rs, requirement, kit) },
    close: { value: () => endpoint.close() },
  }) as AuthSecMcpRouter;
}

/**
 * Guards an ordinary (REST) route: a valid bearer token on every request, and with a `requirement` (as a
 * tool's) the caller must satisfy it, audited. Sets `req.auth` (see {@link AuthSecRequest}). Refusals are the
 * resource server's answers: 401 with an RFC 6750 challenge naming the metadata, 403 (`insufficient_scope`
 * naming the scopes to get, when more scopes would do), 503 when a dependency is unreachable.
 */
export function requireAuthSec(
  resourceServer: ResourceServerInput,
  requirement?: RequirementInput,
): RequestHandler {
  return bearerGuard(toResourceServer(resourceServer, '@authsec/express/v2'), requirement, kit);
}

export type { ResourceServer, ResourceServerInput, ResourceServerOptions } from '@authsec/core';
