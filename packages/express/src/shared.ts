/**
 * What both entries of `@authsec/express` (the v1 SDK line and `./v2`) do with Express, written once. It names
 * no MCP SDK and no `@authsec/mcp` entry (each entry loads only its own SDK line): the route lookup and the
 * error writer come in from the entry.
 */

import type { IncomingMessage, ServerResponse } from 'node:http';
import type { ErrorResponse, RequirementInput, ResourceServer } from '@authsec/core';
import type { NextFunction, Request, RequestHandler, Response } from 'express';

/** What an entry passes in: the `@authsec/mcp` helpers of its SDK line. */
export interface EntryKit {
  requestPath(url: string | undefined): string;
  sendErrorResponse(res: ServerResponse, response: ErrorResponse): void;
}

/** AuthSec's routes (`McpRoutes` of `@authsec/mcp`), structurally. */
export type Routes = (req: IncomingMessage, res: ServerResponse, path?: string, url?: string) => boolean;

/**
 * Express middleware over AuthSec's routes: one exact-path lookup per request, on the full path
 * (`originalUrl`), so the routes answer only where the resource URL says they are; anything else goes on.
 */
export function routesMiddleware(routes: Routes, kit: EntryKit): RequestHandler {
  // `req.url` is relative to the mount point; the resource URL's path is absolute.
  return (req: Request, res: Response, next: NextFunction) => {
    if (!routes(req, res, kit.requestPath(req.originalUrl), req.originalUrl)) next();
  };
}

/**
 * The bearer guard of ordinary routes: the resource server's route guard (authenticate, then the requirement
 * when given, audited under the route), `req.auth` set, refusals answered with the resource server's challenge
 * (401 naming the metadata, 403 `insufficient_scope` naming the scopes to get, 503).
 */
export function bearerGuard(
  rs: ResourceServer,
  requirement: RequirementInput | undefined,
  kit: EntryKit,
): RequestHandler {
  // Compiled once: a bad requirement is a TypeError here, not on a request.
  const guard = rs.guard(requirement);
  return async (req, res, next) => {
    try {
      // The audit record names the route, never its query (which may carry anything).
      (req as { auth?: unknown }).auth = await guard(
        req.headers,
        `${req.method} ${kit.requestPath(req.originalUrl)}`,
      );
    } catch (error) {
      kit.sendErrorResponse(res, rs.challenge(error));
      return;
    }
    next();
  };
}
