/**
 * @authsec/express: the MCP authorization spec on Express 5. Only translation lives here: the resource server
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
  sendErrorResponse,
  sendResourceMetadata,
} from '@authsec/mcp';
import type { AuthInfo } from '@modelcontextprotocol/sdk/server/auth/types.js';
import { type RequestHandler, Router } from 'express';

declare global {
  namespace Express {
    interface Request {
      /** The verified caller, in the MCP SDK's `AuthInfo` shape; `extra.principal` is the AuthSec principal. */
      auth?: AuthInfo;
    }
  }
}

/** A resource server, or the options to create one. */
export type ResourceServerInput = ResourceServer | ResourceServerOptions;

function isResourceServer(value: ResourceServerInput): value is ResourceServer {
  return typeof (value as ResourceServer).challenge === 'function' && 'metadataPaths' in value;
}

function resolve(input: ResourceServerInput): ResourceServer {
  if (typeof input !== 'object' || input === null)
    throw new TypeError('@authsec/express: a resource server or its options are required');
  return isResourceServer(input) ? input : createResourceServer(input);
}

/**
 * Serves the RFC 9728 protected resource metadata at the path form and the root form
 * (`/.well-known/oauth-protected-resource/mcp` and `/.well-known/oauth-protected-resource`). Mount at the root.
 */
export function authSecMetadataRouter(resourceServer: ResourceServerInput): Router {
  const rs = resolve(resourceServer);
  const router = Router();
  for (const path of rs.metadataPaths) router.all(path, (req, res) => sendResourceMetadata(req, res, rs));
  return router;
}

/**
 * Requires a valid bearer token on every request it guards and sets `req.auth` (`{ token, clientId, scopes,
 * expiresAt, resource, extra: { principal } }`). Refusals are answered by the resource server: 401 with an
 * RFC 6750 challenge naming the metadata, 503 when a dependency is unreachable; a bad token is never a 500.
 */
export function requireAuthSec(resourceServer: ResourceServerInput): RequestHandler {
  const rs = resolve(resourceServer);
  return async (req, res, next) => {
    const headers = { authorization: req.headers.authorization };
    let auth: ResourceAuthInfo;
    try {
      auth = rs.authInfo(await rs.authenticate(headers), headers);
    } catch (error) {
      sendErrorResponse(res, rs.challenge(error));
      return;
    }
    req.auth = auth;
    next();
  };
}

/** Options of {@link authSecMcpRouter}: the adapters' common options. */
export type AuthSecMcpRouterOptions = McpAdapterOptions;

/** The router of {@link authSecMcpRouter}, with the resource server behind it and a way to close sessions. */
export interface AuthSecMcpRouter extends Router {
  readonly resourceServer: ResourceServer;
  /** The number of live MCP sessions. */
  readonly sessionCount: number;
  /** Closes every MCP session (call it when the HTTP server stops). */
  close(): Promise<void>;
}

/**
 * The whole MCP endpoint as an Express router: metadata documents, health, and `POST`/`GET`/`DELETE` on the
 * resource URL's path with the SDK's Streamable HTTP transport. Mount it at the application root, before any
 * JSON body parser (a body another parser already read is used as it is). Bad configuration throws here.
 */
export function authSecMcpRouter(options: AuthSecMcpRouterOptions): AuthSecMcpRouter {
  const { server, stateless, allowToolLogin, maxBodyBytes, sessionIdleTimeoutMs, healthPaths, ...rest } =
    options;
  if (typeof server?.createServer !== 'function')
    throw new TypeError('authSecMcpRouter: server must come from createAuthSecServer()');
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
  const router = Router();
  router.use(authSecMetadataRouter(rs));
  if (healthPaths !== false) {
    const paths = healthPaths ?? { live: '/healthz', ready: '/readyz' };
    router.get(paths.live, (_req, res) => void res.json(rs.health()));
    router.get(paths.ready, (_req, res) => void res.json(rs.ready()));
  }
  router.all(rs.mcpPath, (req, res) => endpoint(req, res));
  return Object.defineProperties(router, {
    resourceServer: { value: rs, enumerable: true },
    sessionCount: { get: () => endpoint.sessionCount, enumerable: true },
    close: { value: () => endpoint.close() },
  }) as AuthSecMcpRouter;
}

export type { ResourceAuthInfo, ResourceServer, ResourceServerOptions } from '@authsec/core';
