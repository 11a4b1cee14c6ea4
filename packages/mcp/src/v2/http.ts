/**
 * Streamable HTTP on the MCP SDK v2, both protocol eras from one endpoint, behind core's request pipeline.
 *
 * The pipeline runs first, once (origin, host, token, limits, the decision for each call, step-up). Then the
 * era decides who answers: 2026-07-28 requests (the `_meta` envelope) go to the SDK's `createMcpHandler` with
 * the pipeline's `authInfo`, one fresh per-caller server per request; 2025-era requests go to legacy sessions
 * bound to their subject (server-to-client requests, unsolicited notifications and logging need one), or, with
 * `stateless`, to the SDK's stateless legacy fallback.
 */

import type { IncomingMessage, ServerResponse } from 'node:http';
import { Readable } from 'node:stream';
import { pipeline as pipe } from 'node:stream/promises';
import type { ReadableStream as NodeReadableStream } from 'node:stream/web';
import {
  createRequestPipeline,
  type Principal,
  type RequestPolicyOptions,
  type ResourceServer,
} from '@authsec/core';
import { NodeStreamableHTTPServerTransport, toWebRequest } from '@modelcontextprotocol/node';
import {
  type AuthInfo,
  createMcpHandler,
  isLegacyRequest,
  type McpServer,
} from '@modelcontextprotocol/server';
import {
  adapterResourceServer,
  admit,
  createMcpRoutes,
  type HttpAdapterOptions,
  listenHttp,
  type McpAdapter,
  type McpEndpoint,
  type McpEndpointRequest,
  type McpHttpHandler,
  type McpSessionOptions,
  type RunningHttpServer,
  toEndpoint,
  toHttpHandler,
} from '../endpoint.js';
import { sendRpcError } from '../json-response.js';
import { createSessionTable, endAtExpiry, type ServedSession, serveLegacySession } from '../sessions.js';
import type { ProtectedMcpServer } from './server.js';

/** Options of {@link createMcpV2Endpoint}. */
export interface McpV2EndpointOptions
  extends RequestPolicyOptions,
    Omit<McpSessionOptions, 'allowToolLogin'> {
  /** The protected server (from `protect`). */
  readonly server: ProtectedMcpServer;
  /** The resource server that authenticates every request. */
  readonly resourceServer: ResourceServer;
  /**
   * Most `subscriptions/listen` streams open at once (2026-07-28); past it a new one is refused with 503 and
   * `Retry-After`. Default 1024 (the SDK's own default per handler).
   */
  readonly maxListenStreams?: number;
}

/** Options of {@link createMcpV2HttpHandler}: the v1 handler's, with a protected v2 server. */
export interface McpV2HttpHandlerOptions
  extends Omit<HttpAdapterOptions, 'allowToolLogin'>,
    Pick<McpV2EndpointOptions, 'maxListenStreams'> {
  readonly server: ProtectedMcpServer;
  /** Answers requests for other paths. Default: 404. */
  readonly fallback?: (req: IncomingMessage, res: ServerResponse) => void;
}

/** Options of {@link startMcpV2HttpServer}: the handler's, with where to listen. */
export interface StartMcpV2HttpServerOptions extends Omit<McpV2HttpHandlerOptions, 'resourceUrl'> {
  /** Interface to bind. Default `127.0.0.1`. */
  readonly host?: string;
  /** Port; `0` picks a free one. Default `0`. */
  readonly port?: number;
  /** The canonical MCP URL. Default `http://<host>:<port>/mcp`. */
  readonly resourceUrl?: string;
}

const PROTOCOL_VERSION_CLAIM = 'io.modelcontextprotocol/protocolVersion';

/**
 * Whether a single message carries the 2026-07-28 envelope claim: the SDK never routes such a request to the
 * legacy era (see `isLegacyRequest`), so the classification, which builds and reads a copy of the request, can
 * be skipped. Anything else (no claim, batches, responses) is classified by the SDK itself.
 */
function claimsModernEra(message: unknown): boolean {
  if (typeof message !== 'object' || message === null || Array.isArray(message)) return false;
  const meta = (message as { params?: { _meta?: Record<string, unknown> } }).params?._meta;
  return typeof meta === 'object' && meta !== null && PROTOCOL_VERSION_CLAIM in meta;
}

const isListen = (message: unknown): boolean =>
  typeof message === 'object' &&
  message !== null &&
  (message as { method?: unknown }).method === 'subscriptions/listen';

/** Writes a web `Response` to a Node response, streaming (SSE) with backpressure; ends when either side closes. */
async function writeResponse(res: ServerResponse, response: Response): Promise<void> {
  const headers: Record<string, string> = {};
  response.headers.forEach((value, name) => {
    headers[name] = value;
  });
  if (response.body === null) {
    res.writeHead(response.status, headers).end();
    return;
  }
  // A single JSON answer (most of them) is written at once; only an event stream is piped as it comes.
  if (!response.headers.get('content-type')?.startsWith('text/event-stream')) {
    const body = Buffer.from(await response.arrayBuffer());
    res.writeHead(response.status, { ...headers, 'content-length': String(body.byteLength) }).end(body);
    return;
  }
  res.writeHead(response.status, headers);
  await pipe(Readable.fromWeb(response.body as NodeReadableStream<Uint8Array>), res).catch(() => {
    // The client went away mid-stream: nothing to answer any more.
  });
}

/**
 * The v2 Streamable HTTP endpoint for one path (see the module comment), on `node:http` objects (which Express,
 * Fastify's `raw` and Nest's platforms all expose). Never rejects: failures are answered.
 * Misconfiguration is a `TypeError` here.
 */
export function createMcpV2Endpoint(options: McpV2EndpointOptions): McpEndpoint {
  const { server, resourceServer: rs } = options;
  if (typeof server?.instance !== 'function')
    throw new TypeError('createMcpV2Endpoint: server must come from protect()');
  if (typeof rs?.authenticate !== 'function')
    throw new TypeError('createMcpV2Endpoint: resourceServer must come from createResourceServer()');
  if ((options as { allowToolLogin?: unknown }).allowToolLogin !== undefined)
    throw new TypeError(
      'createMcpV2Endpoint: the tool-based login over HTTP is not available on the v2 line',
    );
  const stateless = options.stateless === true;
  const maxListenStreams = options.maxListenStreams ?? 1024;
  if (!Number.isInteger(maxListenStreams) || maxListenStreams <= 0)
    throw new TypeError('createMcpV2Endpoint: maxListenStreams must be a positive integer');
  const pipeline = createRequestPipeline({ ...options, resourceServer: rs, primitives: server.primitives });
  const logger = rs.logger;
  const onerror = (error: Error) => logger.warn('MCP request refused by the SDK', { cause: error.message });
  // One handler serves the 2026-07-28 era (and, with `stateless`, the 2025 era without sessions).
  const modern = createMcpHandler(server.factory, {
    legacy: stateless ? 'stateless' : 'reject',
    onerror,
    // Listen streams subscribe to the protected server's bus, which delivers a change only to whom it concerns.
    bus: server.bus,
  });
  const sessions = createSessionTable<ServedSession<McpServer>>({
    authsec: rs.authsec,
    idleMs: options.sessionIdleTimeoutMs,
    maxSessions: options.maxSessions,
    maxSessionsPerSubject: options.maxSessionsPerSubject,
  });

  const serveLegacy = (
    req: IncomingMessage & { auth?: AuthInfo },
    res: ServerResponse,
    message: unknown,
    principal: Principal | undefined,
  ): Promise<void> =>
    serveLegacySession(sessions, req, res, message, principal, {
      open: (id, principal) => ({
        transport: new NodeStreamableHTTPServerTransport({ sessionIdGenerator: () => id }),
        server: server.instance(principal, { era: 'legacy' }),
      }),
      // The token may have changed since the last request (a step-up, a refresh): the session's server follows
      // it, and the SDK notifies the client when its tools change.
      beforeRequest: (session, current) => {
        server.sync(session.server, current);
      },
    });
  // A grant or revocation (any replica), a resource update: the legacy sessions it concerns are told.
  const unwatch = server.watch((change) => {
    for (const session of sessions.values()) server.notify(session.server, change);
  });

  const handle = async (incoming: McpEndpointRequest, res: ServerResponse): Promise<void> => {
    // `auth` is ours to set (the pipeline's authInfo); the SDK's transports read it.
    const req = incoming as IncomingMessage & { body?: unknown; auth?: AuthInfo };
    const admitted = await admit(pipeline, req, res);
    if (admitted === undefined) return;
    const abort = new AbortController();
    // Only a response cut short (the client went away) has work to cancel: aborting after every finished one
    // built a DOMException per request, about 15 µs of CPU on each call (measured by profile).
    res.once('close', () => {
      if (!res.writableFinished) abort.abort();
    });
    const request = await toWebRequest(req, admitted.message, { signal: abort.signal });
    if (
      stateless ||
      claimsModernEra(admitted.message) ||
      !(await isLegacyRequest(request, admitted.message))
    ) {
      const requestOptions = {
        ...(admitted.authInfo ? { authInfo: admitted.authInfo } : {}),
        ...(admitted.message === undefined ? {} : { parsedBody: admitted.message }),
      };
      let handler = modern;
      if (admitted.principal !== undefined && isListen(admitted.message)) {
        if (server.bus.listenerCount >= maxListenStreams) {
          sendRpcError(res, 503, -32000, 'Too many open subscriptions/listen streams; try again later', {
            'retry-after': '5',
          });
          return;
        }
        // A listen stream is served by a handler of its own, whose bus knows the caller (so a change reaches only
        // whom it concerns), and lives no longer than its token (the client reopens it with a fresh one).
        const listening = createMcpHandler(server.factory, {
          legacy: 'reject',
          onerror,
          bus: server.bus.forCaller(admitted.principal),
        });
        handler = listening;
        res.once('close', () => void listening.close());
        endAtExpiry(res, admitted.principal);
      }
      await writeResponse(res, await handler.fetch(request, requestOptions));
      return;
    }
    if (admitted.authInfo !== undefined) req.auth = admitted.authInfo;
    await serveLegacy(req, res, admitted.message, admitted.principal);
  };
  return toEndpoint(
    handle,
    pipeline,
    () => sessions.size,
    async () => {
      unwatch();
      await Promise.allSettled([modern.close(), sessions.closeAll()]);
    },
  );
}

/**
 * What a framework adapter serves for a protected v2 server: the resource server, the v2 endpoint and the
 * routes (endpoint, RFC 9728 metadata, health). Misconfiguration is a `TypeError` naming `who`.
 */
export function createMcpV2Adapter(
  options: Omit<McpV2HttpHandlerOptions, 'fallback'>,
  who: string,
  resourceServer?: ResourceServer,
): McpAdapter {
  const { server, healthPaths } = options;
  if (typeof server?.instance !== 'function') throw new TypeError(`${who}: server must come from protect()`);
  const rs = resourceServer ?? adapterResourceServer(options, server.scopesSupported, server.info.name);
  const endpoint = createMcpV2Endpoint({ ...options, resourceServer: rs });
  const routes = createMcpRoutes({
    resourceServer: rs,
    endpoint,
    ...(healthPaths === undefined ? {} : { healthPaths }),
  });
  return { resourceServer: rs, endpoint, routes };
}

/**
 * A protected v2 server as a `node:http` listener: RFC 9728 metadata (path and root form), health, and the
 * endpoint serving both eras at the resource URL's path. Other paths go to `fallback` (default 404).
 */
export function createMcpV2HttpHandler(options: McpV2HttpHandlerOptions): McpHttpHandler {
  const { fallback, ...adapterOptions } = options;
  return toHttpHandler(createMcpV2Adapter(adapterOptions, 'createMcpV2HttpHandler'), fallback);
}

/** Starts {@link createMcpV2HttpHandler} on a `node:http` server (127.0.0.1 unless told otherwise). */
export function startMcpV2HttpServer(options: StartMcpV2HttpServerOptions): Promise<RunningHttpServer> {
  return listenHttp(options, (resourceUrl) => createMcpV2HttpHandler({ ...options, resourceUrl }));
}
