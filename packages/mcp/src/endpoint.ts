/**
 * What every HTTP mount of either SDK line shares, with no MCP SDK in it: the options, the pipeline's admission
 * of a `node:http` request, the routes (metadata, health, the endpoint), the listener and `listenHttp`. The v1
 * line (`http.ts`) and the v2 line (`v2/http.ts`) add only their SDK's transport, so the v2 entry never loads
 * the v1 SDK (and its declarations never name it).
 */
import {
  createServer,
  type IncomingMessage,
  type Server as NodeHttpServer,
  type ServerResponse,
} from 'node:http';
import type { AddressInfo } from 'node:net';
import {
  type AuthSec,
  createResourceServer,
  type ErrorResponse,
  isLoopbackHost,
  type PipelineForward,
  type PipelineResponse,
  type RequestPipeline,
  type RequestPolicyOptions,
  type ResourceServer,
  type ResourceServerOptions,
} from '@authsec/core';
import { sendJson } from './json-response.js';

export { isLoopbackHost };

/** The session options of an MCP endpoint (legacy era; see {@link McpEndpointOptions}). */
export interface McpSessionOptions {
  /**
   * One SDK server per request, no `Mcp-Session-Id`, no GET stream (no notifications), for load-balanced
   * deployments. Default `false`: one server per MCP session, bound to the subject that opened it.
   */
  readonly stateless?: boolean;
  /**
   * Lets requests without a bearer token through, so that clients without OAuth support can use the login
   * tools; the MCP session then is the credential. Loopback clients only, stateful only. Default `false`.
   */
  readonly allowToolLogin?: boolean;
  /** A session unused for this long is closed (clients reinitialize on the 404 that follows). Default 30 min. */
  readonly sessionIdleTimeoutMs?: number;
  /**
   * Most live sessions one subject (issuer, tenant, subject) may hold; opening another closes that subject's
   * least recently used one, so one token cannot exhaust memory. Default 32.
   */
  readonly maxSessionsPerSubject?: number;
  /** Most live sessions in total; past it a new session is refused with 503 and `Retry-After`. Default 10,000. */
  readonly maxSessions?: number;
}

/**
 * Options every HTTP mount takes for its MCP endpoint (`createMcpHttpHandler`, Express, Fastify, NestJS): the
 * resource server's, the request policy's (origins, hosts, CORS, proxies, step-up, limits: see
 * `RequestPolicyOptions` of `@authsec/core`) and the sessions'. Declared once, here, for both SDK lines; each
 * line adds its `server`.
 */
export interface HttpAdapterOptions
  extends Omit<ResourceServerOptions, 'authsec' | 'scopesSupported' | 'resourceName'>,
    RequestPolicyOptions,
    McpSessionOptions {
  /** The engine the server uses: it authenticates every request. */
  readonly authsec: AuthSec;
  /** `scopes_supported` and the 401 `scope`. Default: the scopes the server's tools name. */
  readonly scopesSupported?: readonly string[];
  /** The metadata's `resource_name`. Default: the server's name. */
  readonly resourceName?: string;
  /** Liveness and readiness paths (`GET`), or `false` for none. Default `/healthz` and `/readyz`. */
  readonly healthPaths?: HealthPaths | false;
}

/** The tool-based login's callback route, served by the application's HTTP server (`createToolLogin`'s `callback.redirectUri`). */
export interface LoginCallbackRoute {
  /** The redirect URI's path. */
  readonly path: string;
  /**
   * Answers `GET`/`HEAD` on {@link LoginCallbackRoute.path} with the login's result page. `url` overrides
   * `req.url` (the full path and query, for a framework that strips a mount prefix).
   */
  handle(req: IncomingMessage, res: ServerResponse, url?: string): void;
}

/** Where the liveness and readiness documents are served. */
export interface HealthPaths {
  readonly live: string;
  readonly ready: string;
}

/** The default {@link HealthPaths}. */
export const DEFAULT_HEALTH_PATHS: HealthPaths = Object.freeze({ live: '/healthz', ready: '/readyz' });

/** A `node:http` request listener serving MCP and the protected resource metadata. */
export interface McpHttpHandler {
  (req: IncomingMessage, res: ServerResponse): void;
  /** The RFC 9728 metadata URL (path form) put into challenges. */
  readonly resourceMetadataUrl: string;
  /** The resource server behind it (metadata, challenges, origin rules). */
  readonly resourceServer: ResourceServer;
  /** The number of live MCP sessions (stateful mode). */
  readonly sessionCount: number;
  /** Closes every session. */
  close(): Promise<void>;
}

/** A request with what body parsers and the auth layer may have attached. */
export type McpEndpointRequest = IncomingMessage & {
  body?: unknown;
  auth?: unknown;
  /**
   * What a framework's body parser mounted before the endpoint failed on (Express's `express.json()`, Nest's
   * parser on Express): answered as the endpoint answers its own (400 `-32700`, 413). See {@link bodyParserFailure}.
   */
  bodyFailure?: 'malformed' | 'too-large';
};

/**
 * What a body-parser error (Express's `express.json()`, Nest's parser on Express) says about the body: not
 * JSON, or over the parser's limit; `undefined` for any other error (the application's to answer).
 */
export function bodyParserFailure(error: unknown): 'malformed' | 'too-large' | undefined {
  const type = (error as { type?: unknown } | null)?.type;
  return type === 'entity.parse.failed' ? 'malformed' : type === 'entity.too.large' ? 'too-large' : undefined;
}

/**
 * The Streamable HTTP MCP endpoint for one path, on `node:http` request and response objects (which Express,
 * Fastify's `raw` and Nest's platforms all expose). Never rejects: failures are answered.
 */
export interface McpEndpoint {
  (req: McpEndpointRequest, res: ServerResponse): Promise<void>;
  /** The number of live MCP sessions (stateful mode). */
  readonly sessionCount: number;
  /** Closes every session. */
  close(): Promise<void>;
}

/** Writes a core `{ status, headers, body }` response (an error response or the pipeline's) to `node:http`. */
export function sendErrorResponse(res: ServerResponse, response: ErrorResponse | PipelineResponse): void {
  if (response.body === undefined) {
    res.writeHead(response.status, response.headers).end();
    return;
  }
  sendJson(res, response.status, response.body, response.headers);
}

/** Writes the RFC 9728 document of `resourceServer` (GET, HEAD; OPTIONS for CORS; 405 otherwise). */
export function sendResourceMetadata(
  req: IncomingMessage,
  res: ServerResponse,
  resourceServer: ResourceServer,
): void {
  // The metadata is public and read by browser-based clients during discovery: any origin may read it.
  const cors = { 'access-control-allow-origin': '*', 'access-control-allow-methods': 'GET, OPTIONS' };
  if (req.method === 'OPTIONS') {
    res.writeHead(204, cors).end();
    return;
  }
  if (req.method !== 'GET' && req.method !== 'HEAD') {
    sendJson(res, 405, { error: 'method_not_allowed' }, { allow: 'GET, HEAD, OPTIONS' });
    return;
  }
  const metadata = JSON.stringify(resourceServer.metadata());
  res.writeHead(200, {
    ...cors,
    'content-type': 'application/json',
    'cache-control': 'public, max-age=300',
    'content-length': String(Buffer.byteLength(metadata)),
  });
  res.end(req.method === 'HEAD' ? undefined : metadata);
}

/**
 * Runs core's request pipeline for a `node:http` request: writes its response and returns `undefined` when it
 * answers (a refusal, a preflight), else sets its headers (CORS) and returns what to forward to the SDK.
 */
export async function admit(
  pipeline: RequestPipeline,
  req: McpEndpointRequest,
  res: ServerResponse,
): Promise<PipelineForward | undefined> {
  const result = await pipeline.handle({
    method: req.method ?? 'GET',
    headers: req.headers,
    rawHeaders: req.rawHeaders,
    remoteAddress: req.socket.remoteAddress,
    ...(req.method === 'POST'
      ? {
          body:
            req.bodyFailure !== undefined
              ? { failed: req.bodyFailure }
              : req.body !== undefined
                ? { parsed: req.body }
                : { stream: req },
        }
      : {}),
  });
  if (result.kind === 'respond') {
    sendErrorResponse(res, result.response);
    // What was not read of an oversized body is discarded, so the client reads the 413 before the close.
    if (result.response.discardBody) req.resume();
    return undefined;
  }
  for (const [name, value] of Object.entries(result.headers)) res.setHeader(name, value);
  return result;
}

/**
 * An {@link McpEndpoint} from its request handler: it never rejects (a failure is logged and answered with a
 * JSON-RPC internal error, or ends a response already started), with its session count and `close`.
 */
export function toEndpoint(
  handle: (req: McpEndpointRequest, res: ServerResponse) => Promise<void>,
  pipeline: RequestPipeline,
  sessionCount: () => number,
  close: () => Promise<void>,
): McpEndpoint {
  const logger = pipeline.resourceServer.logger;
  const endpoint = (req: McpEndpointRequest, res: ServerResponse): Promise<void> =>
    handle(req, res).catch((error: unknown) => {
      logger.error('MCP HTTP request failed', { cause: String(error) });
      if (!res.headersSent) sendErrorResponse(res, pipeline.internalError());
      else res.end();
    });
  // defineProperties, not Object.assign: assign would copy the getter's value once instead of the getter.
  return Object.defineProperties(endpoint, {
    sessionCount: { get: sessionCount, enumerable: true },
    close: { value: close },
  }) as McpEndpoint;
}

/** Options of {@link createMcpRoutes}. */
export interface McpRoutesOptions {
  /** The resource server whose metadata documents (path and root form) are served. */
  readonly resourceServer: ResourceServer;
  /** The MCP endpoint, served at the resource URL's path. Omit to serve only the metadata (and health). */
  readonly endpoint?: McpEndpoint;
  /** Liveness and readiness paths (`GET`, `HEAD`), or `false` for none. Default {@link DEFAULT_HEALTH_PATHS}. */
  readonly healthPaths?: HealthPaths | false;
  /** The tool-based login's OAuth callback route. Default: none. */
  readonly loginCallback?: LoginCallbackRoute;
}

/**
 * Answers a request if its path is one of AuthSec's (the MCP endpoint, the metadata documents, health) and
 * returns `true`; returns `false`, having touched nothing, for any other path. `path` defaults to
 * `requestPath(req.url)`; a framework that rewrites `req.url` under a mount point passes the full path, and
 * the full target as `url`.
 */
export interface McpRoutes {
  (req: McpEndpointRequest, res: ServerResponse, path?: string, url?: string): boolean;
  /** Every path answered, for frameworks that register routes one by one. */
  readonly paths: readonly string[];
}

/** The path of a request target: the query dropped, a trailing slash ignored (as the frameworks' routers do). */
export function requestPath(url: string | undefined): string {
  if (url === undefined) return '/';
  const query = url.indexOf('?');
  const path = query === -1 ? url : url.slice(0, query);
  return path.length > 1 && path.endsWith('/') ? path.slice(0, -1) : path;
}

/**
 * AuthSec's routes as one exact-path lookup on `node:http` objects, shared by `createMcpHttpHandler` and the
 * framework adapters. One map lookup per request, rather than a chain of framework routes: on the MCP hot path
 * a router's per-layer matching is measurable (see the benchmark's README).
 */
export function createMcpRoutes(options: McpRoutesOptions): McpRoutes {
  const { resourceServer: rs, endpoint } = options;
  type Route = (req: McpEndpointRequest, res: ServerResponse, url: string | undefined) => void;
  const routes = new Map<string, Route>();
  for (const path of rs.metadataPaths) routes.set(path, (req, res) => sendResourceMetadata(req, res, rs));
  const health = options.healthPaths ?? DEFAULT_HEALTH_PATHS;
  if (health !== false) {
    if (typeof health.live !== 'string' || !health.live.startsWith('/'))
      throw new TypeError('healthPaths.live must be a path starting with /');
    if (typeof health.ready !== 'string' || !health.ready.startsWith('/'))
      throw new TypeError('healthPaths.ready must be a path starting with /');
    const getOnly =
      (answer: (res: ServerResponse) => void) =>
      (req: IncomingMessage, res: ServerResponse): void => {
        if (req.method === 'GET' || req.method === 'HEAD') answer(res);
        else sendJson(res, 405, { error: 'method_not_allowed' }, { allow: 'GET, HEAD' });
      };
    routes.set(
      requestPath(health.live),
      getOnly((res) => sendJson(res, 200, rs.health())),
    );
    // Readiness asks the engine's dependencies (key sets, directory): 503 while one does not answer.
    routes.set(
      requestPath(health.ready),
      getOnly((res) => {
        rs.ready().then(
          (report) => sendJson(res, report.status === 'ready' ? 200 : 503, report),
          () => sendJson(res, 503, { status: 'unavailable' }),
        );
      }),
    );
  }
  const add = (path: string, route: Route) => {
    if (routes.has(path)) throw new TypeError(`The path ${path} is both the MCP path and another route's`);
    routes.set(path, route);
  };
  const callback = options.loginCallback;
  if (callback !== undefined) {
    if (typeof callback.handle !== 'function' || typeof callback.path !== 'string')
      throw new TypeError('loginCallback must be the callbackRoute of createToolLogin()');
    // It reads the query from the request target: under a mount prefix, the full one.
    add(requestPath(callback.path), (req, res, url) => callback.handle(req, res, url));
  }
  if (endpoint !== undefined) add(rs.mcpPath, (req, res) => void endpoint(req, res));
  const answer = (req: McpEndpointRequest, res: ServerResponse, path?: string, url?: string): boolean => {
    const route = routes.get(path ?? requestPath(req.url));
    if (route === undefined) return false;
    route(req, res, url);
    return true;
  };
  return Object.defineProperty(answer, 'paths', {
    value: Object.freeze([...routes.keys()]),
    enumerable: true,
  }) as McpRoutes;
}

/**
 * The resource server of an adapter's options: the server's scopes and name are the defaults of
 * `scopesSupported` and `resourceName`. Shared by both SDK lines' adapters.
 */
export function adapterResourceServer(
  options: Pick<
    HttpAdapterOptions,
    'authsec' | 'resourceUrl' | 'authorizationServers' | 'scopesSupported' | 'resourceName'
  >,
  scopesSupported: readonly string[],
  name: string,
): ResourceServer {
  return createResourceServer({
    authsec: options.authsec,
    resourceUrl: options.resourceUrl,
    authorizationServers: options.authorizationServers,
    scopesSupported: options.scopesSupported ?? scopesSupported,
    resourceName: options.resourceName ?? name,
  });
}

/** The parts every framework adapter serves. */
export interface McpAdapter {
  /** Metadata, challenges, origin rules and session ownership. */
  readonly resourceServer: ResourceServer;
  /** The Streamable HTTP endpoint (close it when the HTTP server stops). */
  readonly endpoint: McpEndpoint;
  /** The endpoint, the metadata documents and health, behind one path lookup. */
  readonly routes: McpRoutes;
}

/**
 * An adapter's parts as one `node:http` listener: its routes, and `fallback` (default 404) for other paths.
 * Shared by both SDK lines' handlers.
 */
export function toHttpHandler(
  { resourceServer: rs, endpoint, routes }: McpAdapter,
  other?: (req: IncomingMessage, res: ServerResponse) => void,
): McpHttpHandler {
  const fallback = other ?? ((_req, res) => sendJson(res, 404, { error: 'not_found' }));
  const handler = (req: IncomingMessage, res: ServerResponse): void => {
    if (!routes(req, res)) fallback(req, res);
  };
  return Object.defineProperties(handler, {
    resourceMetadataUrl: { value: rs.resourceMetadataUrl, enumerable: true },
    resourceServer: { value: rs, enumerable: true },
    sessionCount: { get: () => endpoint.sessionCount, enumerable: true },
    close: { value: () => endpoint.close() },
  }) as McpHttpHandler;
}

/** A listening MCP HTTP server. */
export interface RunningHttpServer {
  /** The MCP endpoint URL (the resource URL). */
  readonly url: string;
  /** The RFC 9728 metadata URL (path form). */
  readonly resourceMetadataUrl: string;
  /** The request listener. */
  readonly handler: McpHttpHandler;
  /** The underlying `node:http` server. */
  readonly httpServer: NodeHttpServer;
  /** Closes every session and stops listening (open streams are ended). */
  close(): Promise<void>;
}

/** Where {@link listenHttp} listens, and what it must refuse or warn about. */
export interface ListenHttpOptions {
  readonly authsec: AuthSec;
  readonly host?: string;
  readonly port?: number;
  readonly resourceUrl?: string;
  readonly allowToolLogin?: boolean;
}

/**
 * Listens on a `node:http` server (127.0.0.1 unless told otherwise; another host logs a warning) and serves the
 * handler `create` builds for the resource URL (default `http://<host>:<port>/mcp`, known once bound). Shared by
 * both SDK lines' `start*` functions. Returns once listening.
 */
export async function listenHttp(
  options: ListenHttpOptions,
  create: (resourceUrl: string) => McpHttpHandler,
): Promise<RunningHttpServer> {
  const host = options.host ?? '127.0.0.1';
  const loopback = isLoopbackHost(host);
  if (options.allowToolLogin && !loopback) {
    throw new TypeError(`startHttpServer: allowToolLogin is only allowed on a loopback host, not '${host}'`);
  }
  const logger = options.authsec.logger;
  if (!loopback) {
    logger.warn(
      `Listening on ${host}: reachable from other machines; bind 127.0.0.1 unless that is intended`,
      {
        option: 'host',
      },
    );
  }
  if (options.allowToolLogin) {
    logger.warn(
      'Tool-based login over HTTP is enabled: requests without a token are accepted from loopback clients and the MCP session becomes the credential',
      { option: 'allowToolLogin' },
    );
  }
  const httpServer = createServer();
  await new Promise<void>((resolve, reject) => {
    httpServer.once('error', reject);
    httpServer.listen(options.port ?? 0, host, () => {
      httpServer.off('error', reject);
      resolve();
    });
  });
  const { port } = httpServer.address() as AddressInfo;
  const urlHost = host.includes(':') && !host.startsWith('[') ? `[${host}]` : host;
  const resourceUrl = options.resourceUrl ?? `http://${urlHost}:${port}/mcp`;
  let handler: McpHttpHandler;
  try {
    handler = create(resourceUrl);
  } catch (error) {
    await new Promise<void>((resolve) => httpServer.close(() => resolve()));
    throw error;
  }
  httpServer.on('request', handler);
  let closing: Promise<void> | undefined;
  return {
    url: resourceUrl,
    resourceMetadataUrl: handler.resourceMetadataUrl,
    handler,
    httpServer,
    close() {
      closing ??= (async () => {
        await handler.close();
        await new Promise<void>((resolve) => {
          httpServer.close(() => resolve());
          httpServer.closeAllConnections();
        });
      })();
      return closing;
    },
  };
}
