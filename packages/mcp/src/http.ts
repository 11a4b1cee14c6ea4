/**
 * Streamable HTTP for servers on the MCP SDK v1 (`@modelcontextprotocol/sdk`): the v1 transport behind the
 * shared endpoint parts of `endpoint.ts`.
 */
import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import {
  createRequestPipeline,
  type Principal,
  type RequestPolicyOptions,
  type ResourceServer,
} from '@authsec/core';
import type { Server } from '@modelcontextprotocol/sdk/server/index.js';
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import {
  adapterResourceServer,
  admit,
  createMcpRoutes,
  type HttpAdapterOptions,
  type LoginCallbackRoute,
  listenHttp,
  type McpAdapter,
  type McpEndpoint,
  type McpEndpointRequest,
  type McpHttpHandler,
  type McpSessionOptions,
  type RunningHttpServer,
  toEndpoint,
  toHttpHandler,
} from './endpoint.js';
import type { AuthSecMcpServer } from './server.js';
import { createSessionTable, type ServedSession, serveLegacySession } from './sessions.js';

export {
  adapterResourceServer,
  admit,
  createMcpRoutes,
  DEFAULT_HEALTH_PATHS,
  type HealthPaths,
  type HttpAdapterOptions,
  isLoopbackHost,
  type ListenHttpOptions,
  type LoginCallbackRoute,
  listenHttp,
  type McpAdapter,
  type McpEndpoint,
  type McpEndpointRequest,
  type McpHttpHandler,
  type McpRoutes,
  type McpRoutesOptions,
  type McpSessionOptions,
  type RunningHttpServer,
  requestPath,
  sendErrorResponse,
  sendResourceMetadata,
  toEndpoint,
  toHttpHandler,
} from './endpoint.js';

/** Options every HTTP mount of a v1 server takes: {@link HttpAdapterOptions}, the server, the login route. */
export interface McpAdapterOptions extends HttpAdapterOptions {
  /** The MCP server (from `createAuthSecServer` of `@authsec/mcp`). */
  readonly server: AuthSecMcpServer;
  /**
   * The tool-based login's OAuth callback route, served with the MCP routes: the `callbackRoute` of a
   * `createToolLogin` made with `callback.redirectUri` on this server. Default: none.
   */
  readonly loginCallback?: LoginCallbackRoute;
}

/** Options of {@link createMcpHttpHandler}: the adapters' options, and what answers other paths. */
export interface McpHttpHandlerOptions extends McpAdapterOptions {
  /**
   * Answers requests for other paths. Not authenticated by this handler. Default: 404.
   */
  readonly fallback?: (req: IncomingMessage, res: ServerResponse) => void;
}

/** Options of {@link createMcpEndpoint}. */
export interface McpEndpointOptions extends RequestPolicyOptions, McpSessionOptions {
  /** The server whose connections this endpoint serves. */
  readonly server: AuthSecMcpServer;
  /** The resource server (from `createResourceServer` of `@authsec/core`) that authenticates every request. */
  readonly resourceServer: ResourceServer;
}

/**
 * The Streamable HTTP MCP endpoint (see {@link McpEndpoint}), shared by `createMcpHttpHandler` and the framework
 * adapters. Every request goes through core's request pipeline once (origin, host, authentication, limits, the
 * decision for each call, step-up: see `createRequestPipeline`); this function only moves its plain values
 * between `node:http` and the SDK's transport, and keeps the legacy era's sessions. A session never
 * authenticates: it is bound to the subject that opened it, and another subject presenting the id gets the
 * same 404 as an unknown id. A body already parsed by a framework (`req.body`) is used as it is.
 * Misconfiguration is a `TypeError` here.
 */
export function createMcpEndpoint(options: McpEndpointOptions): McpEndpoint {
  const { server, resourceServer: rs } = options;
  if (typeof rs?.authenticate !== 'function')
    throw new TypeError('createMcpEndpoint: resourceServer must come from createResourceServer()');
  if (typeof server?.createServer !== 'function')
    throw new TypeError('createMcpEndpoint: server must come from createAuthSecServer()');
  const stateless = options.stateless === true;
  const allowToolLogin = options.allowToolLogin === true;
  if (allowToolLogin && stateless) {
    throw new TypeError('createMcpEndpoint: allowToolLogin needs sessions; it cannot be used with stateless');
  }
  const pipeline = createRequestPipeline({
    ...options,
    resourceServer: rs,
    methods: stateless ? ['POST'] : ['GET', 'POST', 'DELETE'],
    allowAnonymousLoopback: allowToolLogin,
  });
  const sessions = createSessionTable<ServedSession<Server>>({
    authsec: rs.authsec,
    idleMs: options.sessionIdleTimeoutMs,
    maxSessions: options.maxSessions,
    maxSessionsPerSubject: options.maxSessionsPerSubject,
  });

  const handleStateless = async (req: IncomingMessage, res: ServerResponse, body: unknown): Promise<void> => {
    const transport = new StreamableHTTPServerTransport({ sessionIdGenerator: undefined });
    const mcp = server.createServer(`http-${randomUUID()}`);
    res.on('close', () => {
      void transport.close();
      void mcp.close();
    });
    await mcp.connect(transport);
    await transport.handleRequest(req, res, body);
  };

  const handleStateful = (
    req: IncomingMessage,
    res: ServerResponse,
    body: unknown,
    principal: Principal | undefined,
  ): Promise<void> =>
    serveLegacySession(sessions, req, res, body, principal, {
      open: (id) => ({
        transport: new StreamableHTTPServerTransport({ sessionIdGenerator: () => id }),
        server: server.createServer(id),
      }),
    });

  const handle = async (req: McpEndpointRequest, res: ServerResponse): Promise<void> => {
    const admitted = await admit(pipeline, req, res);
    if (admitted === undefined) return;
    if (admitted.authInfo !== undefined) req.auth = admitted.authInfo;
    if (stateless) return handleStateless(req, res, admitted.message);
    return handleStateful(req, res, admitted.message, admitted.principal);
  };
  return toEndpoint(
    handle,
    pipeline,
    () => sessions.size,
    () => sessions.closeAll(),
  );
}

/**
 * Builds what a framework adapter serves from the adapters' common options: the resource server (unless one is
 * given, as Nest's module provides its own), the MCP endpoint and their routes. The adapters only translate
 * these to their framework. Misconfiguration is a `TypeError` naming `who`.
 */
export function createMcpAdapter(
  options: McpAdapterOptions,
  who: string,
  resourceServer?: ResourceServer,
): McpAdapter {
  const { server, healthPaths, loginCallback } = options;
  if (typeof server?.createServer !== 'function')
    throw new TypeError(`${who}: server must come from createAuthSecServer()`);
  const rs = resourceServer ?? adapterResourceServer(options, server.scopesSupported, server.name);
  const endpoint = createMcpEndpoint({ ...options, resourceServer: rs });
  const routes = createMcpRoutes({
    resourceServer: rs,
    endpoint,
    ...(healthPaths === undefined ? {} : { healthPaths }),
    ...(loginCallback === undefined ? {} : { loginCallback }),
  });
  return { resourceServer: rs, endpoint, routes };
}

/**
 * The Streamable HTTP MCP endpoint as a `node:http` listener: the resource server of `@authsec/core` (RFC 9728
 * metadata at the path form and the root form, RFC 6750 challenges, `Origin` rules, the `insufficient_scope`
 * step-up) in front of {@link createMcpEndpoint} at the resource URL's path, with liveness and readiness
 * documents (`/healthz`, `/readyz` unless `healthPaths` says otherwise). A missing or bad token is 401 with
 * a challenge naming the metadata URL; an unreachable key set or database is 503. Stateful sessions are bound
 * to the issuer, tenant and subject that created them. Other paths go to `fallback` (default 404).
 * Misconfiguration is a `TypeError` here.
 */
export function createMcpHttpHandler(options: McpHttpHandlerOptions): McpHttpHandler {
  if (options.allowToolLogin === true && options.stateless === true) {
    throw new TypeError(
      'createMcpHttpHandler: allowToolLogin needs sessions; it cannot be used with stateless',
    );
  }
  if ((options.authorizationServers ?? []).length === 0) {
    throw new TypeError('createMcpHttpHandler: authorizationServers needs at least one issuer URL');
  }
  const { fallback, ...adapterOptions } = options;
  // The same parts, and the same defaults, as every framework adapter.
  return toHttpHandler(createMcpAdapter(adapterOptions, 'createMcpHttpHandler'), fallback);
}

/** Options of {@link startHttpServer}: the handler's, with where to listen. */
export interface StartHttpServerOptions extends Omit<McpHttpHandlerOptions, 'resourceUrl'> {
  /** Interface to bind. Default `127.0.0.1`; anything else logs a warning (and forbids `allowToolLogin`). */
  readonly host?: string;
  /** Port; `0` picks a free one. Default `0`. */
  readonly port?: number;
  /** The canonical MCP URL. Default `http://<host>:<port>/mcp`. */
  readonly resourceUrl?: string;
}

/**
 * Starts {@link createMcpHttpHandler} on a `node:http` server, bound to 127.0.0.1 unless told otherwise.
 * Returns once listening.
 */
export function startHttpServer(options: StartHttpServerOptions): Promise<RunningHttpServer> {
  return listenHttp(options, (resourceUrl) => createMcpHttpHandler({ ...options, resourceUrl }));
}
