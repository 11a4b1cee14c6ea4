/**
 * @authsec/express: the MCP authorization spec on Express 5. Only translation lives here: the resource server
 * (metadata, bearer challenges, origin rules, step-up) is `createResourceServer` of `@authsec/core`, the MCP
 * endpoint is `createMcpEndpoint` of `@authsec/mcp`.
 *
 * @packageDocumentation
 */

import type { IncomingMessage, ServerResponse } from 'node:http';
import {
  type RequirementInput,
  type ResourceServer,
  type ResourceServerInput,
  toResourceServer,
} from '@authsec/core';
import {
  createMcpAdapter,
  createMcpRoutes,
  type McpAdapterOptions,
  requestPath,
  sendErrorResponse,
} from '@authsec/mcp';
import type { AuthInfo } from '@modelcontextprotocol/sdk/server/auth/types.js';
import type { RequestHandler } from 'express';
import { bearerGuard, type EntryKit, routesMiddleware } from './shared.js';

declare global {
  namespace Express {
    interface Request {
      /** The verified caller, in the MCP SDK's `AuthInfo` shape; `extra.principal` is the AuthSec principal. */
      auth?: AuthInfo;
    }
  }
}

const kit: EntryKit = { requestPath, sendErrorResponse };
const resolve = (input: ResourceServerInput): ResourceServer => toResourceServer(input, '@authsec/express');

/**
 * Serves the RFC 9728 protected resource metadata at the path form and the root form
 * (`/.well-known/oauth-protected-resource/mcp` and `/.well-known/oauth-protected-resource`). Mount at the root.
 */
export function authSecMetadataRouter(resourceServer: ResourceServerInput): RequestHandler {
  return routesMiddleware(
    createMcpRoutes({ resourceServer: resolve(resourceServer), healthPaths: false }),
    kit,
  );
}

/**
 * Requires a valid bearer token on every request it guards and sets `req.auth` (`{ token, clientId, scopes,
 * expiresAt, resource, extra: { principal } }`); with a `requirement` (as a tool's: roles, scopes, ...), the
 * caller must also satisfy it, and the decision is audited. Refusals are answered by the resource server: 401
 * with an RFC 6750 challenge naming the metadata, 403 (`insufficient_scope` with the scopes to get, when more
 * scopes would do), 503 when a dependency is unreachable; a bad token is never a 500.
 */
export function requireAuthSec(
  resourceServer: ResourceServerInput,
  requirement?: RequirementInput,
): RequestHandler {
  return bearerGuard(resolve(resourceServer), requirement, kit);
}

/** Options of {@link authSecMcpRouter}: the adapters' common options. */
export type AuthSecMcpRouterOptions = McpAdapterOptions;

/** A `node:http` request listener (what `express()` returns is one). */
export type RequestListener = (req: IncomingMessage, res: ServerResponse) => void;

/**
 * The middleware of {@link authSecMcpRouter}, with the resource server behind it and a way to close sessions.
 * It answers its own paths and passes every other request on (`next()`).
 */
export interface AuthSecMcpRouter extends RequestHandler {
  readonly resourceServer: ResourceServer;
  /** The number of live MCP sessions. */
  readonly sessionCount: number;
  /**
   * The fast path: a `node:http` listener that answers AuthSec's routes on the raw request and response before
   * Express sees them, and hands every other request to `app`: `http.createServer(mcp.listener(app))`.
   * Express swaps the prototypes of every request and response it handles, which makes Node's HTTP internals
   * slower for the rest of that request (about a quarter of a `tools/call` on the benchmark machine); MCP
   * requests skip that, and also any middleware of `app` (logging, rate limits): use the plain middleware when
   * those must run on MCP requests too.
   */
  listener(app: RequestListener): RequestListener;
  /** Closes every MCP session (call it when the HTTP server stops). */
  close(): Promise<void>;
}

/**
 * The whole MCP endpoint as Express middleware: metadata documents, health, and `POST`/`GET`/`DELETE` on the
 * resource URL's path with the SDK's Streamable HTTP transport. Mount it with `app.use()`, before any JSON body
 * parser (a body another parser already read is used as it is); it matches the request's full path, so the
 * mount path does not matter. Or serve it ahead of Express with {@link AuthSecMcpRouter.listener}. Bad
 * configuration throws here.
 */
export function authSecMcpRouter(options: AuthSecMcpRouterOptions): AuthSecMcpRouter {
  const { resourceServer: rs, endpoint, routes } = createMcpAdapter(options, 'authSecMcpRouter');
  return Object.defineProperties(routesMiddleware(routes, kit), {
    resourceServer: { value: rs, enumerable: true },
    sessionCount: { get: () => endpoint.sessionCount, enumerable: true },
    listener: {
      value: (app: RequestListener): RequestListener => {
        if (typeof app !== 'function') throw new TypeError('listener: app must be a request listener');
        return (req, res) => {
          if (!routes(req, res)) app(req, res);
        };
      },
    },
    close: { value: () => endpoint.close() },
  }) as AuthSecMcpRouter;
}

export type {
  ResourceAuthInfo,
  ResourceServer,
  ResourceServerInput,
  ResourceServerOptions,
} from '@authsec/core';
